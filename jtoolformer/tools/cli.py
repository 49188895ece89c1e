"""Command-line hooks of the tools package (the main CLI mounts them)."""

from __future__ import annotations

import argparse
import time

from jtoolformer.tools.executor import check_timeout
from jtoolformer.tools.registry import ToolBackends
from jtoolformer.tools.retrieval import build_index


def add_backend_args(parser: argparse.ArgumentParser) -> None:
    """--index and --mt-model, the backends of WikiSearch, QA and MT (see `backends_from_args`)."""
    parser.add_argument("--index", default=None,
                        help="passage index for WikiSearch and QA, built by `jtoolformer index build`; "
                             "default: the 125 bundled demo passages")
    parser.add_argument("--mt-model", default=None,
                        help="local seq2seq translation checkpoint for MT (e.g. NLLB); "
                             "default: the language model, prompted to translate")


def backends_from_args(args: argparse.Namespace, default: ToolBackends = ToolBackends()) -> ToolBackends:
    """The backends given on the command line, each over `default` (e.g. from a config file)."""
    return ToolBackends(args.index if args.index is not None else default.index,
                        args.mt_model if args.mt_model is not None else default.mt_model)


def timeout_seconds(text: str) -> float:
    """An argparse type: a tool call's time limit in seconds, "0" for no limit."""
    try:
        return check_timeout(float(text), "the time limit")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_index_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds `index build --source S --out D`; the parsed args carry `func(args) -> int`."""
    index = subparsers.add_parser("index", help="passage indexes for WikiSearch and QA")
    actions = index.add_subparsers(dest="index_command", required=True)
    build = actions.add_parser("build", help="build a BM25 index from a JSONL file or a folder of .txt files")
    build.add_argument("--source", required=True,
                       help="JSONL with 'title' and 'text' per line (KILT style), or a folder of .txt files")
    build.add_argument("--out", required=True, help="directory to write the index to")
    build.set_defaults(func=_build_index)
    return index


def _build_index(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    index = build_index(args.source, args.out, show_progress=True)
    print(f"indexed {len(index)} passages from {args.source} into {args.out} "
          f"in {time.perf_counter() - started:.1f} s")
    return 0
