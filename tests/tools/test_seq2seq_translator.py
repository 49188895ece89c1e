"""Seq2SeqTranslator on a tiny random T5 written to a local directory (no model hub)."""

import pytest

from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.mt import MT, NLLB_ENGLISH, Seq2SeqTranslator

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
WORDS = ["<pad>", "</s>", "<unk>", NLLB_ENGLISH, "fra_Latn", "deu_Latn",
         *"le chat dort sur canapé der hund schläft the cat sleeps on sofa".split()]


def save_tiny_model(directory, words):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                         unk_token="<unk>").save_pretrained(directory)
    config = transformers.T5Config(vocab_size=len(words), d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8,
                                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    transformers.T5ForConditionalGeneration(config).save_pretrained(directory)


@pytest.fixture(scope="module")
def nllb_like_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("nllb_like")
    save_tiny_model(directory, WORDS)
    return directory


def test_loads_lazily_and_translates_deterministically(nllb_like_dir):
    translator = Seq2SeqTranslator(nllb_like_dir, max_new_tokens=4)
    assert translator._model is None
    first = translator.translate(["le chat dort", "der hund schläft"], ["fr", "de"])
    assert translator._model is not None
    assert first == translator.translate(["le chat dort", "der hund schläft"], ["fr", "de"])
    assert all(isinstance(text, str) and text for text in first)


def test_nllb_vocabularies_get_the_source_language_and_english_forced(nllb_like_dir):
    translator = Seq2SeqTranslator(nllb_like_dir, max_new_tokens=3)
    [french] = translator.translate(["le chat dort"], ["fr"])
    assert translator._tokenizer.src_lang == "fra_Latn"
    assert french.split()[0] == NLLB_ENGLISH  # forced as the first generated token


def test_mt_tool_over_a_seq2seq_model(nllb_like_dir):
    mt = MT(Seq2SeqTranslator(nllb_like_dir, max_new_tokens=4), max_output_chars=30)
    result = mt("Le chat dort sur le canapé.", ToolContext())
    assert 0 < len(result) <= 30
    assert mt("The cat sleeps on the sofa.", ToolContext()) == ""


def test_control_token_strings_in_the_text_stay_text(nllb_like_dir):
    translator = Seq2SeqTranslator(nllb_like_dir, max_new_tokens=2)
    translator.translate(["le chat"], ["fr"])
    tokenizer = translator._tokenizer
    ids = tokenizer("le </s> chat <pad> dort")["input_ids"]
    assert not {tokenizer.convert_tokens_to_ids(t) for t in ("</s>", "<pad>")} & set(ids)
