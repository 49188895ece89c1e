"""`jtoolformer train` on a JSONL of texts with a HF checkpoint directory (model + tokenizer)."""

import argparse
import json

import numpy as np
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from conftest import sentences
from jtoolformer.lm import load_model
from jtoolformer.train import add_train_command, load_train_config


def write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="jtoolformer")
    add_train_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_train_command_trains_saves_its_config_and_exports(tmp_path, hf_dir):
    data = write_jsonl(tmp_path / "train.jsonl", sentences(100, 1))
    held_out = write_jsonl(tmp_path / "held_out.jsonl", sentences(20, 2))
    out = tmp_path / "run"
    overrides = [f"model={hf_dir}", "steps=6", "checkpoint.eval_every=3", "peak_tflops_per_device=1"]
    assert run_cli(["train", "--config", "configs/train_tiny.yaml", "--data", str(data),
                    "--eval-data", str(held_out), "--out", str(out), *overrides]) == 0

    assert load_train_config(out / "train_config.yaml") == load_train_config("configs/train_tiny.yaml", overrides)
    best = load_model(out / "hf" / "best")
    assert best.tokenizer.encode("The sum of 3 and 4 is 7.") == Tokenizer.from_file(
        str(hf_dir / "tokenizer.json")).encode("The sum of 3 and 4 is 7.").ids

    assert run_cli(["train", "--out", str(out), "--export", "latest"]) == 0
    latest, final = load_file(out / "hf" / "latest" / "model.safetensors"), load_file(
        out / "hf" / "final" / "model.safetensors")
    assert latest.keys() == final.keys() and all(np.array_equal(latest[k], final[k]) for k in final)
    start = load_file(hf_dir / "model.safetensors")
    assert not np.array_equal(start["transformer.h.0.mlp.fc_in.weight"], final["transformer.h.0.mlp.fc_in.weight"])


def test_train_command_needs_a_tokenizer_for_texts(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", sentences(4, 1))
    with pytest.raises(ValueError, match="has no tokenizer"):
        run_cli(["train", "--data", str(data), "--out", str(tmp_path / "run"), "model=configs/gptj_tiny.yaml"])


def test_data_without_a_valid_document_names_the_bad_lines(tmp_path, hf_dir):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"txt": "oops"}\n\n{"text": ""}\n')
    with pytest.raises(ValueError, match=r"no valid document .*bad.jsonl:1: the document has no 'text' field"):
        run_cli(["train", "--data", str(data), "--out", str(tmp_path / "run"), f"model={hf_dir}"])
