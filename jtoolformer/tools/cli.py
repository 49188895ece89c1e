"""Command-line hooks of the tools package (the main CLI mounts them)."""

from __future__ import annotations

import argparse
import time

from jtoolformer.tools.executor import check_timeout
from jtoolformer.tools.retrieval import build_index


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
