"""`jtoolformer` command line: one subcommand per pipeline stage, plus `demo` that chains them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jtoolformer.annotate.cli import add_annotate_command
from jtoolformer.demo import add_demo_command
from jtoolformer.evaluate.cli import add_eval_command
from jtoolformer.evaluate.model import make_generator_and_scorer
from jtoolformer.generate_cli import add_generate_command
from jtoolformer.tools.cli import add_index_command
from jtoolformer.train.cli import add_train_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jtoolformer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    add_generate_command(sub)
    add_annotate_command(sub)
    add_train_command(sub)
    add_index_command(sub)
    add_eval_command(sub, make_generator_and_scorer)

    add_demo_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
