"""No loss on tool results: the masked tokens are exactly what follows each call's arrow."""

import numpy as np
import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from jtoolformer.checkpoints.tokenizer import Tokenizer
from jtoolformer.data.pipeline import make_pipeline
from jtoolformer.data.tool_results import MaskToolResults, loss_mask

# Each text, and what decoding would append after the arrows of its calls, written out by hand.
CASES = [
    ("Café nº1: 3 plus 4 is [Calculator(3 + 4) -> 7] 7. Done.", [" 7]"]),
    ("In Zürich [QA(Where is the ETH?) → Zürich, Schweiz] it is; [Calendar()->Today is Monday.] so "
     "[WikiSearch(ETH)] too.", [" Zürich, Schweiz]", "Today is Monday.]"]),
    ("No call here, just [brackets] and -> arrows.", []),
    ("[Calculator(12 / 4) -> 3] and [Calculator(1 + 1) -> 2] twice", [" 3]", " 2]"]),
]


def byte_level(merges: bool, trim_offsets: bool) -> Tokenizer:
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    if trim_offsets:
        hf.post_processor = processors.ByteLevel(trim_offsets=True)
    hf.train_from_iterator([text for text, _ in CASES] * 20, trainers.BpeTrainer(
        vocab_size=400 if merges else 256, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return Tokenizer(hf)


TOKENIZERS = {
    "merged": byte_level(merges=True, trim_offsets=False),
    "merged, trimmed offsets": byte_level(merges=True, trim_offsets=True),
    "bytes only": byte_level(merges=False, trim_offsets=False),  # "é" is two tokens of one character
}


def without(text: str, parts: list[str]) -> str:
    """`text` with each of `parts` cut out, found left to right."""
    kept, at = [], 0
    for part in parts:
        start = text.index(part, at)
        kept.append(text[at:start])
        at = start + len(part)
    return "".join(kept) + text[at:]


@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize(("text", "appended"), CASES)
def test_masked_tokens_spell_what_follows_the_arrows(name, text, appended):
    tokenizer = TOKENIZERS[name]
    encoded = MaskToolResults(tokenizer)(text)
    tokens, mask = np.asarray(encoded.tokens), np.asarray(encoded.loss_mask)
    np.testing.assert_array_equal(tokens, tokenizer.encode(text))
    assert tokenizer.decode(tokens[~mask].tolist()) == "".join(appended)
    # All the rest is learnt, the arrows included: writing one is what asks for a tool.
    assert tokenizer.decode(tokens[mask].tolist()) == without(text, appended)


def test_a_token_is_masked_when_it_begins_inside_a_span():
    np.testing.assert_array_equal(loss_mask([0, 2, 4, 5, 9], [(3, 5), (9, 10)]), [True, True, False, True, False])


def test_the_mask_reaches_the_batches_through_the_pipeline():
    tokenizer = TOKENIZERS["merged"]
    texts = [text for text, _ in CASES]
    batch = next(iter(make_pipeline(texts, MaskToolResults(tokenizer), seq_len=64, global_batch=len(texts),
                                    seed=0, mode="pad", num_epochs=1)))
    seen = {}
    for inputs, targets, keep, segments in zip(batch["inputs"], batch["targets"], batch["loss_mask"],
                                               batch["segment_ids"], strict=True):
        length = int((segments == 1).sum())
        text = tokenizer.decode(inputs[:length].tolist())
        # Slot k predicts token k+1; the text's last slot predicts nothing.
        seen[text] = tokenizer.decode(targets[: length - 1][keep[: length - 1] == 0].tolist())
    assert seen == {text: "".join(appended) for text, appended in CASES}
