"""The `eval` subcommand: evaluate a model on the paper's tasks."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from jtoolformer.cli.args import add_dtype_arg, at_least
from jtoolformer.errors import UsageError
from jtoolformer.evaluate.harness import check_modes, evaluate
from jtoolformer.evaluate.protocols import Generator, TextScorer
from jtoolformer.evaluate.results import MODES
from jtoolformer.evaluate.tasks import FAMILIES, DataSources, resolve_tasks
from jtoolformer.tools.cli import add_backend_args, backends_from_args
from jtoolformer.tools.registry import ToolBackends

ModelFactory = Callable[[str, str | None, ToolBackends, str | None], tuple[Generator, TextScorer]]


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def run_eval(args: argparse.Namespace, make_generator_and_scorer: ModelFactory) -> None:
    tasks = resolve_tasks(args.tasks)
    check_modes(args.modes)
    if not args.data_dir.is_dir():  # checked before the model loads
        raise UsageError(f"--data-dir {args.data_dir}: no such folder; give the folder of the tasks' releases")
    args.out.mkdir(parents=True, exist_ok=True)
    backends = backends_from_args(args)
    backends.check()
    generator, scorer = make_generator_and_scorer(args.model, args.mesh, backends, args.dtype)
    results = evaluate(
        generator,
        scorer,
        tasks,
        args.modes,
        args.limit,
        args.out,
        data=DataSources(args.data_dir, args.tfds_data_dir),
        trigger_top_k=args.trigger_top_k,
        batch_size=args.batch_size,
        run_info={"model": args.model},
    )
    for result in results:
        print(f"{result.task} [{result.mode}] {result.metric} {result.value:.4f} (n={result.n})")
    print(f"wrote {args.out / 'results.md'}, results.json, results.png")


def add_eval_command(
    subparsers: argparse._SubParsersAction, make_generator_and_scorer: ModelFactory
) -> argparse.ArgumentParser:
    """Adds `eval`; its parsed args carry ``func(args)``, which runs it with the model that
    ``make_generator_and_scorer(args.model, args.mesh, backends, args.dtype)`` builds, its tools backed by
    ``backends`` (--index, --mt-model)."""
    parser = subparsers.add_parser("eval", help="evaluate a model on the paper's downstream tasks")
    parser.add_argument(
        "--model", required=True, help="the model to evaluate (passed to the model factory)"
    )
    parser.add_argument(
        "--mesh", default=None, help="data,fsdp,tensor over this host's devices (default: one device)"
    )
    add_dtype_arg(parser)
    parser.add_argument(
        "--tasks",
        default=",".join(FAMILIES),
        help=f"comma-separated tasks or families ({', '.join(FAMILIES)}); default: all",
    )
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="where the original releases are"
    )
    parser.add_argument(
        "--tfds-data-dir", type=Path, default=None, help="TFDS data dir (default: TFDS's)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--limit", type=at_least(1), default=None, help="examples per task (default: all)")
    parser.add_argument(
        "--modes",
        type=_comma_list,
        default=list(MODES),
        help=f"comma-separated, from {','.join(MODES)}",
    )
    parser.add_argument(
        "--trigger-top-k", type=at_least(0), default=10, help="start a call when <API> is in the top k"
    )
    parser.add_argument("--batch-size", type=at_least(1), default=16)
    add_backend_args(parser)
    parser.set_defaults(func=lambda args: run_eval(args, make_generator_and_scorer))
    return parser
