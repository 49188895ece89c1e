"""scripts/experiment_math.py: its pieces on fixtures, and the whole driver on SmolLM2 (slow)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "experiment_math.py"
GSM8K = REPO / "tests" / "fixtures" / "gsm8k_tiny.jsonl"
ASDIV = REPO / "tests" / "evaluate" / "fixtures" / "math" / "ASDiv.xml"  # 2 problems with a numeric answer
sys.path.insert(0, str(REPO / "tests" / "evaluate"))
from eval_fakes import LookupGenerator, words_scorer  # noqa: E402

from jtoolformer.evaluate import DataSources, evaluate, resolve_tasks  # noqa: E402

_spec = importlib.util.spec_from_file_location("experiment_math", SCRIPT)
experiment = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(experiment)


def test_a_finished_stage_is_skipped_and_other_settings_are_refused(tmp_path):
    runs = []
    first = experiment.run_stage(tmp_path, "annotate", {"k": 20, "path": tmp_path}, lambda: runs.append(1))
    again = experiment.run_stage(tmp_path, "annotate", {"k": 20, "path": tmp_path}, lambda: runs.append(2))
    assert runs == [1] and again == first and first["settings"] == {"k": 20, "path": str(tmp_path)}
    with pytest.raises(SystemExit, match="stage annotate finished .* with other settings"):
        experiment.run_stage(tmp_path, "annotate", {"k": 5, "path": tmp_path}, lambda: runs.append(3))
    assert runs == [1]


def test_a_stage_that_failed_runs_again(tmp_path):
    def fail():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        experiment.run_stage(tmp_path, "train", {}, fail)
    runs = []
    experiment.run_stage(tmp_path, "train", {}, lambda: runs.append(1))
    assert runs == [1]


def test_documents_and_held_out_texts_are_consecutive_problems(tmp_path):
    experiment.write_documents(GSM8K, 1, 3, 2, tmp_path)
    corpus = [json.loads(line) for line in (tmp_path / "corpus.jsonl").read_text().splitlines()]
    held = [json.loads(line) for line in (tmp_path / "held_out.jsonl").read_text().splitlines()]
    assert [d["id"] for d in corpus] == ["gsm8k_tiny.jsonl:2", "gsm8k_tiny.jsonl:3", "gsm8k_tiny.jsonl:4"]
    assert [d["id"] for d in held] == ["gsm8k_tiny.jsonl:5", "gsm8k_tiny.jsonl:6"]
    tom = corpus[0]
    assert [(c["expression"], c["result"]) for c in tom["gold_calls"]] == [("45-18", "27"), ("27+10", "37")]
    assert "<<" not in tom["text"] and "####" not in tom["text"]
    with pytest.raises(SystemExit, match="fewer than 5 \\+ 2 problems"):
        experiment.write_documents(GSM8K, 0, 5, 2, tmp_path)


def test_eval_figures_split_accuracy_by_whether_a_call_was_made(tmp_path):
    sources = DataSources(ASDIV.parent.parent, tmp_path)
    examples = list(resolve_tasks("asdiv")[0].load(sources))
    # The first problem answered without a call, the second through a call, wrongly.
    generator = LookupGenerator({examples[0].prompt: examples[0].answers[0], examples[1].prompt: "1"},
                                {examples[0].prompt})
    evaluate(generator, words_scorer, resolve_tasks("asdiv"), ["disabled", "enabled"], None, tmp_path, data=sources)
    figures = experiment.eval_figures(tmp_path / "results.json")
    assert figures["disabled"] == {
        "n": 2, "accuracy": 0.5, "call_share": 0.0, "tool_calls": {}, "accuracy_with_call": None,
        "n_with_call": 0, "accuracy_without_call": 0.5, "n_without_call": 2}
    assert figures["enabled"] == {
        "n": 2, "accuracy": 0.5, "call_share": 0.5, "tool_calls": {"qa": 1}, "accuracy_with_call": 0.0,
        "n_with_call": 1, "accuracy_without_call": 1.0, "n_without_call": 1}


def test_training_summary_names_the_checkpoint_with_the_lowest_held_out_perplexity(tmp_path):
    records = [{"step": 5, "loss": 3.0}, {"step": 10, "loss": 2.5, "eval_ppl": 9.0},
               {"step": 15, "loss": 2.4}, {"step": 20, "loss": 2.2, "eval_ppl": 9.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert experiment.training_summary(tmp_path) == {
        "steps": 20, "held_out_perplexity": [{"step": 10, "perplexity": 9.0}, {"step": 20, "perplexity": 9.5}],
        "best_step": 10, "best_perplexity": 9.0, "first_loss": 3.0, "last_loss": 2.2}


def figures(accuracy, share):
    made = round(share * 10)
    return {"n": 10, "accuracy": accuracy, "call_share": share, "tool_calls": {}, "accuracy_with_call": None,
            "n_with_call": made, "accuracy_without_call": accuracy, "n_without_call": 10 - made}


@pytest.mark.parametrize("models", [("base",), ("base", "fine-tuned")])
def test_results_json_and_chart(tmp_path, models):
    evaluation = {m: {"disabled": figures(0.1, 0.0), "enabled": figures(0.2, 0.3)} for m in models}
    payload = {"settings": {"model": "smollm2-135m"}, "annotation": {"c_star_examples": 0}, "evaluation": evaluation,
               "seconds": {"annotate": 1.5}, "path": tmp_path}
    experiment.write_results(payload, tmp_path / "results" / "experiment_math.json")
    assert json.loads((tmp_path / "results" / "experiment_math.json").read_text()) == {**payload, "path": str(tmp_path)}
    png = (tmp_path / "results" / "experiment_math.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_mesh_sizes_become_train_overrides():
    assert experiment.mesh_overrides("1,-1,2") == ["mesh.data=1", "mesh.fsdp=-1", "mesh.tensor=2"]
    with pytest.raises(SystemExit):
        experiment.mesh_overrides("8")


STABLE = ("settings", "annotation", "training", "evaluation", "seconds", "cpu_seconds")


def driver(out: Path, results: Path) -> subprocess.CompletedProcess:
    """The driver on 2 GSM8K fixture problems (2 held out) and 2 ASDiv problems, one device: k 6, m 4 and
    τ_f -100 (every executed call is kept, so that C* is not empty), 4 training steps of 2 rows,
    evaluated after 2 and 4 (the learning rate is 0 at the first and last step: evaluations one step
    apart can tie, and on a tie the loop names the earlier checkpoint best while orbax keeps the later).
    Its stages share a compilation cache, as they share the user's when run from the command line."""
    env = {**os.environ, "XLA_FLAGS": "", "PYTHONPATH": str(REPO),
           "JAX_COMPILATION_CACHE_DIR": str(out.parent / "compiled")}
    command = [sys.executable, str(SCRIPT), "--gsm8k", str(GSM8K), "--asdiv", str(ASDIV), "--out", str(out),
               "--results", str(results), "--mesh=1,1,1", "--problems", "2", "--held-out", "2",
               "--asdiv-limit", "2", "--eval-batch", "2"]
    command += [f"--annotate-override={o}" for o in ("positions_per_doc=6", "calls_per_position=4",
                                                      "filter_threshold=-100")]
    command += [f"--train-override={o}" for o in ("steps=4", "global_batch=2", "seq_len=128",
                                                   "checkpoint.eval_every=2", "checkpoint.save_every=2")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


@pytest.mark.slow
def test_the_whole_experiment_on_smollm2_resumes_as_finished(tmp_path):
    out, results = tmp_path / "run", tmp_path / "results" / "experiment_math.json"
    driver(out, results)
    payload = json.loads(results.read_text())
    assert payload["annotation"]["c_star_examples"] >= 1
    assert payload["annotation"]["calculator"]["documents"] == 2
    assert payload["training"]["steps"] == 4 and payload["training"]["best_step"] in (2, 4)
    assert (out / "train" / "hf" / "best" / "tokenizer.json").exists()
    assert set(payload["seconds"]) == set(payload["cpu_seconds"]) == {
        "documents", "annotate", "train", "eval base", "eval fine-tuned"}
    assert len(payload["git_commit"].removesuffix("-dirty")) == 40
    for model, folder in (("base", "base"), ("fine-tuned", "fine-tuned")):
        for mode in ("disabled", "enabled"):
            lines = (out / "eval" / folder / "predictions" / f"asdiv.{mode}.jsonl").read_text().splitlines()
            predictions = [json.loads(line) for line in lines]
            got = payload["evaluation"][model][mode]
            called = [p["correct"] for p in predictions if p["calls"]]
            assert got["n"] == 2 and got["accuracy"] == sum(p["correct"] for p in predictions) / 2
            assert got["n_with_call"] == len(called) and got["n_with_call"] + got["n_without_call"] == 2
            assert got["accuracy_with_call"] == (sum(called) / len(called) if called else None)
        assert payload["evaluation"][model]["disabled"]["n_with_call"] == 0
    assert results.with_suffix(".png").read_bytes().startswith(b"\x89PNG")

    again = driver(out, results)
    assert again.stdout.count("done before") == 5 and "$ " not in again.stdout
    rewritten = json.loads(results.read_text())
    assert [rewritten[k] for k in STABLE] == [payload[k] for k in STABLE]
