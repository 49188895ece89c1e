"""`jtoolformer` command line: one subcommand per pipeline stage, plus `demo` that chains them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jtoolformer.annotate.cli import add_annotate_command
from jtoolformer.demo import add_demo_command
from jtoolformer.lm import DEFAULT_MODEL, load_model
from jtoolformer.tools.cli import add_index_command
from jtoolformer.train.cli import add_train_command


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="HF checkpoint directory, .gguf file, YAML model config, or smollm2-135m (default)")
    parser.add_argument("--mesh", default="-1,1,1", help="data,fsdp,tensor sizes (one may be -1)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])


def _load(args: argparse.Namespace):
    from jtoolformer.sharding import make_mesh

    mesh = make_mesh(*(int(x) for x in args.mesh.split(",")))
    return load_model(args.model, mesh=mesh, dtype=args.dtype)


def _generate(args: argparse.Namespace) -> int:
    lm = _load(args)
    outputs = lm.generate(args.prompts, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                          top_p=args.top_p, seed=args.seed)
    for prompt, text in zip(args.prompts, outputs):
        print(f"{prompt}\033[1m{text}\033[0m" if sys.stdout.isatty() else prompt + text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jtoolformer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate text from prompts")
    _add_model_args(gen)
    gen.add_argument("prompts", nargs="+")
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.set_defaults(func=_generate)

    add_annotate_command(sub)
    add_train_command(sub)
    add_index_command(sub)

    add_demo_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
