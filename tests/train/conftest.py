import json

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from jtoolformer.annotate.dataset import build_c_star
from jtoolformer.checkpoints.hf import save_hf
from jtoolformer.data.pipeline import PackedBatches, make_pipeline
from jtoolformer.lm import load_model
from jtoolformer.models import load_model_config
from jtoolformer.tools.calls import ToolCall, format_call

TINY = "configs/gptj_tiny.yaml"


def pattern_texts(n: int, seed: int, vocab: int = 64) -> list[str]:
    """Texts a tiny model can learn: arithmetic progressions mod `vocab`, lengths 8..40, written as their
    token ids ("3 7 11 …"; `token_ids` reads them back)."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        start, stride, length = rng.integers(0, vocab), rng.integers(1, 5), rng.integers(8, 41)
        texts.append(" ".join(str(t) for t in (start + stride * np.arange(length)) % vocab))
    return texts


def token_ids(text: str) -> list[int]:
    return [int(t) for t in text.split()]


def pipeline(n_texts: int, seed: int, epochs: int | None = None, seq_len: int = 64, batch: int = 8,
             mode: str = "pack") -> PackedBatches:
    """The grain pipeline over `pattern_texts(n_texts, seed)`, shuffled by `seed`."""
    return make_pipeline(pattern_texts(n_texts, seed), token_ids, seq_len=seq_len, global_batch=batch, seed=seed,
                         num_epochs=epochs, mode=mode)


def make_batches(n_texts: int, seed: int, **layout) -> list[dict[str, np.ndarray]]:
    """One epoch of `pipeline` as a list."""
    return list(pipeline(n_texts, seed, epochs=1, **layout))


def sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"The sum of {a} and {b} is {a + b}." for a, b in rng.integers(0, 50, (n, 2))]


DAY = "Today is Monday, January 30, 2023."


def c_star_records(n: int, seed: int) -> list[dict]:
    """C* records as annotation writes them: two in three call the Calculator, the others the Calendar,
    one in five both. Non-ASCII text before the calls checks that spans are counted in characters."""
    rng = np.random.default_rng(seed)
    records = []
    for i, (a, b) in enumerate(rng.integers(0, 50, (n, 2))):
        head, tail = f"Café nº{i}: {a} plus {b} is", f" {a + b}. Done."
        calls = []
        if i % 3 != 2:
            calls.append({"tool": "Calculator", "input": f"{a} + {b}", "result": str(a + b),
                          "char_position": len(head)})
        if i % 3 == 2 or i % 5 == 0:
            calls.append({"tool": "Calendar", "input": "", "result": DAY, "char_position": len(head)})
        text = head + "".join(" " + format_call(ToolCall(c["tool"], c["input"]), c["result"]) for c in calls) + tail
        calls = [{**c, "token_position": 0, "call": format_call(ToolCall(c["tool"], c["input"]), c["result"]),
                  "loss_plus": 1.0, "loss_minus": 2.0} for c in calls]
        records.append({"id": f"doc{i}", "text": text, "original": head + tail, "url": "", "date": "2023-01-30",
                        "calls": calls})
    return records


@pytest.fixture(scope="session")
def tiny_cfg():
    return load_model_config(TINY, scan_layers=True)  # the layout TPUs train with; test_loop trains unrolled


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory):
    """The tiny GPT-J with a byte-level BPE tokenizer of 300 tokens trained on sentences and C* texts."""
    directory = tmp_path_factory.mktemp("tiny_hf")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = sentences(200, 0) + [r["text"] for r in c_star_records(60, 0)]
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    lm = load_model(TINY)
    save_hf(lm.params, lm.config, directory)
    tok.save(str(directory / "tokenizer.json"))
    return directory


@pytest.fixture(scope="session")
def c_star_dir(tmp_path_factory):
    """An annotation run directory: 30 records in two shards, and its C* built from them in tfds/."""
    out = tmp_path_factory.mktemp("annotated")
    (out / "shards").mkdir()
    records = c_star_records(30, 1)
    shards = [out / "shards" / "000000.jsonl", out / "shards" / "000001.jsonl"]
    for shard, part in zip(shards, (records[:16], records[16:]), strict=True):
        shard.write_text("".join(json.dumps(r) + "\n" for r in part))
    build_c_star(shards, out / "tfds")
    return out
