"""Training data: C* and corpora through the grain pipeline, the held-out split, the per-tool cap,
the tool-result mask, and resumption."""

import json
from collections import Counter

import numpy as np
import pytest

from conftest import c_star_records, sentences
from jtoolformer.checkpoints.tokenizer import Tokenizer
from jtoolformer.lm import load_model
from jtoolformer.train import load_train_config, read_metrics, train_on
from jtoolformer.train.config import DataConfig
from jtoolformer.train.data import cap_per_tool, open_source, open_train_data, select_texts

RECORDS = c_star_records(30, 1)  # what the c_star_dir fixture holds
BY_TEXT = {r["text"]: r for r in RECORDS}
BY_ORIGINAL = {r["original"]: r for r in RECORDS}


def config(*overrides):
    return load_train_config("configs/train_tiny.yaml", ["peak_tflops_per_device=1", *overrides])


def tools_of(texts):
    return Counter(call["tool"] for text in texts for call in BY_TEXT[text]["calls"])


def test_c_star_trains_the_tiny_model(tmp_path, hf_dir, c_star_dir):
    cfg = config(f"model={hf_dir}", "steps=3", "log_every=1", "checkpoint.eval_every=3", "data.held_out=4",
                 "data.mask_tool_results=true")
    result = train_on(cfg, load_model(hf_dir), c_star_dir, tmp_path)
    assert result.step == 3 and not result.stopped and result.best[0] == 3
    losses = [r["loss"] for r in read_metrics(tmp_path) if "loss" in r]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert (tmp_path / "hf" / "best" / "tokenizer.json").exists()


def test_held_out_documents_are_fixed_kept_apart_and_read_without_calls(tmp_path, c_star_dir):
    source = open_source(c_star_dir, tmp_path)
    texts = select_texts(DataConfig(held_out=4, max_examples_per_tool=0), source)
    assert len(texts.held_out) == 4 and len(texts.train) == 26 and texts.over_cap == 0
    held_out = {BY_ORIGINAL[t]["id"] for t in texts.held_out}  # originals: texts without calls
    trained = {BY_TEXT[t]["id"] for t in texts.train}  # texts with their calls inlined
    assert len(held_out) == 4 and not held_out & trained and len(held_out | trained) == len(RECORDS)
    again = select_texts(DataConfig(held_out=4, max_examples_per_tool=0), open_source(c_star_dir, tmp_path))
    assert list(again.held_out) == list(texts.held_out) and list(again.train) == list(texts.train)

    assert len(select_texts(DataConfig(held_out=0.1), source).held_out) == 3
    assert select_texts(DataConfig(held_out=0), source).held_out is None
    with pytest.raises(ValueError, match=r"data.held_out=30 holds out 30 of the 30 texts"):
        select_texts(DataConfig(held_out=30), source)


def test_eval_data_of_its_own_leaves_every_document_to_training(tmp_path, c_star_dir):
    held_out = tmp_path / "held_out.jsonl"
    held_out.write_text("".join(json.dumps({"text": t}) + "\n" for t in sentences(5, 0)))
    texts = select_texts(DataConfig(held_out=4), open_source(c_star_dir, tmp_path), open_source(held_out, tmp_path))
    assert len(texts.train) == len(RECORDS) and sorted(texts.held_out) == sorted(sentences(5, 0))


def test_the_cap_keeps_each_tool_within_its_count():
    tools = {0: ["A"], 1: ["A"], 2: ["A", "B"], 3: ["B"], 4: ["A"], 5: ["B"], 6: []}
    assert cap_per_tool(range(7), tools.__getitem__, cap=2) == [0, 1, 3, 5, 6]
    assert cap_per_tool([2, 0, 1, 3], tools.__getitem__, cap=2) == [2, 0, 3]
    assert cap_per_tool(range(7), tools.__getitem__, cap=0) == list(range(7))


def test_the_cap_counts_the_calls_of_c_star(tmp_path, c_star_dir):
    source = open_source(c_star_dir, tmp_path)
    assert tools_of(select_texts(DataConfig(held_out=0, max_examples_per_tool=0), source).train) == {
        "Calculator": 20, "Calendar": 14}
    capped = select_texts(DataConfig(held_out=0, max_examples_per_tool=5), source)
    assert tools_of(capped.train) == {"Calculator": 5, "Calendar": 5}
    assert capped.over_cap == len(RECORDS) - len(capped.train) > 0


def test_a_corpus_spec_trains_whole_with_no_cap(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in sentences(12, 3)))
    texts = select_texts(DataConfig(held_out=2, max_examples_per_tool=1), open_source(corpus, tmp_path / "tfds"))
    assert sorted([*texts.train, *texts.held_out]) == sorted(sentences(12, 3)) and texts.over_cap == 0


def test_an_annotation_run_without_c_star_is_named(tmp_path):
    (tmp_path / "shards").mkdir()
    with pytest.raises(ValueError, match="annotation run without C\\*"):
        open_source(tmp_path, tmp_path / "tfds")


def test_train_batches_resume_bitwise_and_mask_only_results(tmp_path, hf_dir, c_star_dir):
    tokenizer = Tokenizer.from_hf_dir(hf_dir)
    cfg = config("data.held_out=4", "data.mask_tool_results=true", "seq_len=48", "global_batch=4")
    batches = open_train_data(cfg, tokenizer, c_star_dir, tmp_path).batches
    for _ in range(3):
        next(batches)
    state = json.loads(json.dumps(batches.get_state()))
    expected = [next(batches) for _ in range(4)]

    reopened = open_train_data(cfg, tokenizer, c_star_dir, tmp_path).batches
    reopened.set_state(state)
    for want in expected:
        got = next(reopened)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)

    unmasked = open_train_data(config("data.held_out=4", "seq_len=48", "global_batch=4"), tokenizer, c_star_dir,
                               tmp_path)
    plain, masked = next(unmasked.batches), next(open_train_data(cfg, tokenizer, c_star_dir, tmp_path).batches)
    np.testing.assert_array_equal(plain["inputs"], masked["inputs"])
    dropped = (plain["loss_mask"] == 1) & (masked["loss_mask"] == 0)
    assert dropped.any() and not ((plain["loss_mask"] == 0) & (masked["loss_mask"] == 1)).any()
    assert "->" not in tokenizer.decode(plain["targets"][dropped].tolist())
