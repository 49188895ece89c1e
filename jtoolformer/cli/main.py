"""`jtoolformer` command line: one subcommand per pipeline stage, plus `demo` that chains them."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import jax
from tqdm.contrib.logging import logging_redirect_tqdm

from jtoolformer.annotate.cli import add_annotate_command, add_candidates_command
from jtoolformer.demo import add_demo_command
from jtoolformer.errors import UsageError
from jtoolformer.evaluate.cli import add_eval_command
from jtoolformer.evaluate.model import make_generator_and_scorer
from jtoolformer.generate.cli import add_generate_command
from jtoolformer.tools.cli import add_index_command
from jtoolformer.train.cli import add_train_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jtoolformer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    add_generate_command(sub)
    add_annotate_command(sub)
    add_candidates_command(sub)
    add_train_command(sub)
    add_index_command(sub)
    add_eval_command(sub, make_generator_and_scorer)

    add_demo_command(sub)
    return parser


def use_compilation_cache() -> Path | None:
    """Keeps compiled programs on disk so a command started again (or the next stage) skips most
    compilation: $JAX_COMPILATION_CACHE_DIR when set (jax reads it itself), else
    $XDG_CACHE_HOME/jtoolformer/jax (~/.cache by default). JTOOLFORMER_COMPILATION_CACHE=0 turns it off."""
    if os.environ.get("JTOOLFORMER_COMPILATION_CACHE") == "0" or "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return None
    directory = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jtoolformer" / "jax"
    jax.config.update("jax_compilation_cache_dir", str(directory))
    return directory


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a subcommand. A mistake in what the user gave (UsageError, or a file that cannot be opened)
    is one line on stderr and exit status 2; JTOOLFORMER_DEBUG=1 shows the traceback instead."""
    args = build_parser().parse_args(argv)
    use_compilation_cache()
    try:
        with logging_redirect_tqdm():  # a warning printed beside a progress bar would break its line
            return args.func(args)
    except (UsageError, OSError) as e:
        if os.environ.get("JTOOLFORMER_DEBUG", "0") not in ("", "0") or not is_usage_error(e):
            raise
        print(f"jtoolformer {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


_PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def is_usage_error(error: Exception) -> bool:
    """A UsageError, or an OSError about a path the user gave (missing, a directory where a file belongs,
    no permission, or any error naming its file)."""
    return isinstance(error, (UsageError, *_PATH_ERRORS)) or (isinstance(error, OSError) and error.filename is not None)


if __name__ == "__main__":
    sys.exit(main())
