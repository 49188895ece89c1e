import argparse
import json
from pathlib import Path

import pytest
from eval_fakes import LookupGenerator, words_scorer

from jtoolformer.evaluate.cli import add_eval_command
from jtoolformer.evaluate.tasks import DataSources, resolve_tasks
from jtoolformer.tools.registry import ToolBackends


def _parser(factory) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jtoolformer")
    add_eval_command(parser.add_subparsers(dest="command", required=True), factory)
    return parser


def test_eval_command_builds_the_model_and_writes_the_report(
    sources: DataSources, tmp_path: Path
) -> None:
    asked = []

    def factory(model_spec: str, mesh: str | None, backends, dtype):
        asked.append((model_spec, mesh, backends, dtype))
        examples = list(resolve_tasks("lama_squad")[0].load(sources))
        return LookupGenerator(
            {e.prompt: e.answers[0] for e in examples}, {examples[0].prompt}
        ), words_scorer

    out = tmp_path / "out"
    args = _parser(factory).parse_args(
        [
            "eval",
            "--model",
            "ckpt/step_2000",
            "--mesh",
            "1,8,1",
            "--tasks",
            "lama_squad,wikitext",
            "--data-dir",
            str(sources.data_dir),
            "--tfds-data-dir",
            str(sources.tfds_data_dir),
            "--out",
            str(out),
            "--limit",
            "2",
            "--modes",
            "disabled",
            "--trigger-top-k",
            "3",
            "--dtype",
            "bfloat16",
        ]
    )
    args.func(args)
    assert asked == [("ckpt/step_2000", "1,8,1", ToolBackends(), "bfloat16")]
    payload = json.loads((out / "results.json").read_text())
    assert payload["run"] == {"model": "ckpt/step_2000", "trigger_top_k": 3, "limit": 2}
    assert [(r["task"], r["mode"], r["value"]) for r in payload["results"]] == [
        ("lama_squad", "disabled", 0.5),
        ("wikitext", "disabled", pytest.approx(7.389, abs=1e-3)),
    ]
    assert (out / "results.md").exists() and (out / "results.png").exists()


def test_eval_command_defaults() -> None:
    args = _parser(lambda spec, mesh, backends, dtype: None).parse_args(
        ["eval", "--model", "m", "--data-dir", "d", "--out", "o"]
    )
    assert args.tasks == "lama,math,qa,mlqa,temporal,perplexity"
    assert (args.modes, args.trigger_top_k, args.limit, args.tfds_data_dir) == (
        ["disabled", "enabled"],
        10,
        None,
        None,
    )
