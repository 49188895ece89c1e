"""The paper's math experiment at small scale: GSM8K problems → C* (Calculator) → fine-tuning on C*
→ ASDiv, base and fine-tuned model, each with calls disabled and enabled.

Every stage runs a `jtoolformer` command in its own process and leaves `<out>/stages/<stage>.json`
(its settings and duration) when it finishes; started again, the driver skips finished stages, and
annotate and train continue where they stopped. A finished stage whose settings changed is an error:
use another --out. The last step always runs: the figures, settings, durations and git commit as
JSON, and a bar chart (see scripts/experiment_math.sh for the sizes and the model).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # without pyplot: no display backend

from jtoolformer.data.gsm8k import read_problems, write_corpus
from jtoolformer.train.metrics import read_metrics

ROOT = Path(__file__).resolve().parent.parent
MODES = ("disabled", "enabled")
MODELS = ("base", "fine-tuned")


def _cpu_seconds() -> float:
    usages = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usages)


def run_stage(out: Path, name: str, settings: Mapping[str, Any], action: Callable[[], None]) -> dict:
    """Runs `action` unless `<out>/stages/<name>.json` says it finished with these `settings`;
    returns that record: {"settings", "seconds", "cpu_seconds", "finished"}. CPU seconds (this
    process and its children) tell what a stage costs on a machine that others share."""
    marker = out / "stages" / f"{name}.json"
    settings = json.loads(json.dumps(settings, default=str))
    if marker.exists():
        record = json.loads(marker.read_text())
        if record["settings"] != settings:
            raise SystemExit(
                f"stage {name} finished in {out} with other settings ({marker}):\n"
                f"  then: {record['settings']}\n  now:  {settings}\nuse another --out, or delete {marker}"
            )
        print(f"[{name}] done before ({record['seconds']:.0f} s), skipped", flush=True)
        return record
    print(f"[{name}] running", flush=True)
    start, cpu = time.monotonic(), _cpu_seconds()
    action()
    record = {
        "settings": settings,
        "seconds": time.monotonic() - start,
        "cpu_seconds": _cpu_seconds() - cpu,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(marker)
    return record


def jtoolformer(*args: str) -> None:
    command = [sys.executable, "-m", "jtoolformer", *args]
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def mesh_overrides(mesh: str) -> list[str]:
    """`data,fsdp,tensor` as the train config's overrides."""
    sizes = mesh.split(",")
    if len(sizes) != 3:
        raise SystemExit(f"--mesh {mesh!r}: give data,fsdp,tensor (one may be -1)")
    return [f"mesh.{axis}={size}" for axis, size in zip(("data", "fsdp", "tensor"), sizes, strict=True)]


def write_documents(gsm8k: Path, start: int, problems: int, held_out: int, out: Path) -> None:
    """GSM8K lines [start, start + problems) → corpus.jsonl (annotated); the next `held_out` →
    held_out.jsonl (plain texts for the held-out perplexity that picks the best checkpoint)."""
    corpus = list(read_problems(gsm8k, start, problems))
    held = list(read_problems(gsm8k, start + problems, held_out))
    if len(corpus) < problems or len(held) < held_out:
        raise SystemExit(f"{gsm8k}: fewer than {problems} + {held_out} problems after line {start}")
    write_corpus(corpus, out / "corpus.jsonl")
    write_corpus(held, out / "held_out.jsonl")


def eval_data_dir(asdiv: Path, out: Path) -> Path:
    """A data dir laid out as `jtoolformer eval` reads it: <dir>/math/ASDiv.xml."""
    link = out / "eval_data" / "math" / "ASDiv.xml"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(asdiv)
    return link.parent.parent


def eval_figures(results_json: Path) -> dict[str, dict[str, Any]]:
    """ASDiv's figures by mode from an eval run's results.json: accuracy, call share, accuracy with
    and without a call (the paper's Table 9), and their example counts."""
    figures = {}
    for r in json.loads(results_json.read_text())["results"]:
        figures[r["mode"]] = {
            "n": r["n"],
            "accuracy": r["value"],
            "call_share": r["call_share"],
            "tool_calls": r["tool_calls"],
            "accuracy_with_call": r["accuracy_with_call"],
            "n_with_call": r["n_with_call"],
            "accuracy_without_call": r["accuracy_without_call"],
            "n_without_call": r["n"] - r["n_with_call"],
        }
    return figures


def training_summary(train_dir: Path) -> dict[str, Any]:
    records = read_metrics(train_dir)
    evals = [(r["step"], r["eval_ppl"]) for r in records if "eval_ppl" in r]
    losses = [(r["step"], r["loss"]) for r in records if "loss" in r]
    best = min(evals, key=lambda e: e[1]) if evals else None
    return {
        "steps": records[-1]["step"] if records else 0,
        "held_out_perplexity": [{"step": s, "perplexity": p} for s, p in evals],
        "best_step": best[0] if best else None,
        "best_perplexity": best[1] if best else None,
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
    }


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "HEAD")
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _label(figures: Mapping[str, Any]) -> str:
    text = f"{figures['accuracy'] * 100:.1f}%"
    if figures["n_with_call"]:
        text += f"\ncalls {figures['call_share'] * 100:.0f}%"
    return text


def write_chart(evaluation: Mapping[str, Mapping[str, Any]], path: Path, title: str) -> None:
    """ASDiv accuracy of each model under each mode, labelled with the share of problems with a call."""
    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    axes = figure.subplots()
    models = [m for m in MODELS if m in evaluation]
    width = 0.38
    for i, mode in enumerate(MODES):
        xs = [x + (i - 0.5) * width for x in range(len(models))]
        figures = [evaluation[m][mode] for m in models]
        bars = axes.bar(xs, [f["accuracy"] * 100 for f in figures], width, label=f"calls {mode}")
        axes.bar_label(bars, [_label(f) for f in figures], fontsize="small")
    axes.set_xticks(range(len(models)), models)
    axes.set_ylabel("ASDiv accuracy (%)")
    axes.set_ylim(0, max(5.0, 1.3 * max(evaluation[m][k]["accuracy"] * 100 for m in models for k in MODES)))
    axes.set_title(title, fontsize="medium")
    axes.legend(fontsize="small", loc="upper left")
    figure.savefig(path, dpi=120)


def write_results(payload: Mapping[str, Any], json_path: Path) -> None:
    """`payload` as JSON at `json_path`, its evaluation as a bar chart beside it (.png)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    problems = payload["evaluation"]["base"]["disabled"]["n"]
    examples = payload["annotation"]["c_star_examples"]
    title = f"{payload['settings']['model']}: {problems} ASDiv problems, fine-tuned on {examples} C* examples"
    write_chart(payload["evaluation"], json_path.with_suffix(".png"), title)


def evaluate_models(args: argparse.Namespace, models: Mapping[str, str], stages: dict[str, dict]) -> dict[str, Any]:
    """ASDiv with each model under each mode, one resumable stage per model; their figures by model."""
    data_dir = eval_data_dir(args.asdiv, args.out)
    evaluation = {}
    for name, model in models.items():
        eval_out = args.out / "eval" / name
        eval_args = ["--model", model, f"--mesh={args.mesh}", "--tasks", "asdiv", "--data-dir", str(data_dir),
                     "--out", str(eval_out), "--limit", str(args.asdiv_limit), "--modes", ",".join(MODES),
                     "--batch-size", str(args.eval_batch)]
        stages[f"eval {name}"] = run_stage(args.out, f"eval_{name}", {"args": eval_args, "asdiv": args.asdiv},
                                           lambda a=eval_args: jtoolformer("eval", *a))
        evaluation[name] = eval_figures(eval_out / "results.json")
    return evaluation


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    configs = {"annotate": args.annotate_config.read_text(), "train": args.train_config.read_text()}
    stages: dict[str, dict] = {}

    documents = {"gsm8k": args.gsm8k, "start": args.start, "problems": args.problems, "held_out": args.held_out}
    stages["documents"] = run_stage(
        out, "documents", documents, lambda: write_documents(args.gsm8k, args.start, args.problems, args.held_out, out)
    )

    annotate_args = ["--tools", "calculator", "--config", str(args.annotate_config), "--corpus",
                     str(out / "corpus.jsonl"), "--out", str(out / "annotate"), "--model", args.model,
                     f"--mesh={args.mesh}", *args.annotate_overrides]
    stages["annotate"] = run_stage(out, "annotate", {"args": annotate_args, "config": configs["annotate"]},
                                   lambda: jtoolformer("annotate", *annotate_args))
    annotation = json.loads((out / "annotate" / "stats.json").read_text())
    examples = annotation["_c_star_examples"]

    models = {"base": args.model}
    if examples:
        train_args = ["--config", str(args.train_config), "--data", str(out / "annotate"), "--eval-data",
                      str(out / "held_out.jsonl"), "--out", str(out / "train"), f"model={args.model}",
                      *mesh_overrides(args.mesh), *args.train_overrides]
        stages["train"] = run_stage(out, "train", {"args": train_args, "config": configs["train"]},
                                    lambda: jtoolformer("train", *train_args))
        models["fine-tuned"] = str(out / "train" / "hf" / "best")
    else:
        print(f"[train] C* is empty (no call kept; see {out / 'annotate' / 'stats.json'}): nothing to fine-tune "
              "on, only the base model is evaluated", flush=True)

    evaluation = evaluate_models(args, models, stages)

    payload = {
        "settings": {
            "model": args.model,
            "mesh": args.mesh,
            **documents,
            "asdiv": args.asdiv,
            "asdiv_limit": args.asdiv_limit,
            "annotate_config": configs["annotate"],
            "annotate_overrides": args.annotate_overrides,
            "train_config": configs["train"],
            "train_overrides": args.train_overrides,
        },
        "annotation": {"c_star_examples": examples, "calculator": annotation.get("Calculator", {})},
        "training": training_summary(out / "train") if examples else None,
        "evaluation": evaluation,
        "seconds": {name: record["seconds"] for name, record in stages.items()},
        "cpu_seconds": {name: record["cpu_seconds"] for name, record in stages.items()},
        "git_commit": git_commit(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_results(payload, args.results)
    print(f"wrote {args.results} and {args.results.with_suffix('.png')}")
    return payload


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gsm8k", type=Path, required=True, help="GSM8K-format JSONL (question, answer)")
    p.add_argument("--asdiv", type=Path, required=True, help="ASDiv.xml")
    p.add_argument("--out", type=Path, required=True, help="run directory (stages resume from it)")
    p.add_argument("--results", type=Path, default=ROOT / "scripts" / "results" / "experiment_math.json",
                   help="the figures (JSON); the chart goes beside it as .png")
    p.add_argument("--model", default="smollm2-135m", help="annotated with, fine-tuned, evaluated")
    p.add_argument("--mesh", default="-1,1,1", help="data,fsdp,tensor over the devices, for every stage")
    p.add_argument("--start", type=int, default=0, help="GSM8K lines skipped")
    p.add_argument("--problems", type=int, required=True, help="GSM8K problems annotated")
    p.add_argument("--held-out", type=int, default=32, help="GSM8K problems after them: held-out perplexity")
    p.add_argument("--asdiv-limit", type=int, required=True, help="ASDiv problems evaluated")
    p.add_argument("--eval-batch", type=int, default=16)
    p.add_argument("--annotate-config", type=Path, default=ROOT / "configs" / "experiment_math_annotate.yaml")
    p.add_argument("--train-config", type=Path, default=ROOT / "configs" / "experiment_math_train.yaml")
    p.add_argument("--annotate-override", dest="annotate_overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="an annotate config override (repeatable)")
    p.add_argument("--train-override", dest="train_overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="a train config override such as steps=40 (repeatable)")
    args = p.parse_args(argv)
    if args.held_out < 1:
        p.error("--held-out must be at least 1: the best checkpoint is chosen by held-out perplexity")
    for name in ("gsm8k", "asdiv", "out", "results", "annotate_config", "train_config"):
        setattr(args, name, getattr(args, name).resolve())  # the stages run from the repository root
    return args


if __name__ == "__main__":
    run(parse_args())
