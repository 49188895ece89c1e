"""`jtoolformer generate`: continues prompts, calling tools where the model asks; the text streams to the
terminal with calls and their results set apart (colours on a terminal, a list of calls after each text)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from jtoolformer.cli.args import add_model_args, at_least, load_from_args
from jtoolformer.errors import UsageError
from jtoolformer.generate.sampling import Sampling
from jtoolformer.generate.session import CallRecord, PieceKind, ToolGenerator
from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.cli import add_backend_args, backends_from_args, timeout_seconds
from jtoolformer.tools.registry import describe_backends, tool_keys

_STYLES: dict[PieceKind, str] = {"text": "\033[1m", "call": "\033[36m", "result": "\033[32m"}
_RESET, _DIM = "\033[0m", "\033[2m"


def add_generate_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds `generate PROMPT... [--tools …]`; the parsed args carry `func(args) -> int`."""
    parser = subparsers.add_parser("generate", help="continue prompts, calling tools (calls shown as they happen)")
    add_model_args(parser)
    parser.add_argument("prompts", nargs="+")
    parser.add_argument("--tools", default="calculator,calendar,wikisearch",
                        help="comma-separated: calculator,calendar,wikisearch,qa,mt")
    parser.add_argument("--disable-tools", action="store_true", help="API-start tokens get probability 0")
    parser.add_argument("--max-calls", type=at_least(0), default=1, help="calls per prompt (the paper: 1)")
    parser.add_argument("--trigger-top-k", type=at_least(0), default=10,
                        help="start a call wherever '[' is among the k most likely tokens; 0: only where decoding "
                             "picks it")
    parser.add_argument("--max-new-tokens", type=at_least(1), default=64, help="tokens the model writes (results extra)")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=at_least(0), default=0)
    parser.add_argument("--timeout", type=timeout_seconds, default=10.0,
                        help="seconds a tool call may take (0: no limit)")
    parser.add_argument("--date", type=dt.date.fromisoformat, default=dt.date.today(),
                        help="the date Calendar reports (YYYY-MM-DD; default today)")
    add_backend_args(parser)
    parser.set_defaults(func=run_generate_command)
    return parser


def run_generate_command(args: argparse.Namespace) -> int:
    sampling = Sampling(args.temperature, args.top_k, args.top_p)  # settings and tools checked before the load
    tool_keys(args.tools)
    backends = backends_from_args(args)
    backends.check()
    lm = load_from_args(args)
    if lm.tokenizer is None:
        raise UsageError(f"model {args.model!r} has no tokenizer; use a checkpoint directory with tokenizer.json, "
                         "a .gguf, or smollm2-135m")
    tools = backends.make_tools(args.tools, generator=lm)
    for line in describe_backends(tools):  # stderr: stdout is the generated text
        print(line, file=sys.stderr)
    generate = ToolGenerator(lm, tools, timeout_s=args.timeout, max_calls=args.max_calls, sampling=sampling)
    styled = sys.stdout.isatty()

    def show(row: int, text: str, kind: PieceKind) -> None:
        print(f"{_STYLES[kind]}{text}{_RESET}" if styled else text, end="", flush=True)

    for prompt in args.prompts:
        print(prompt, end="", flush=True)
        [generation] = generate([prompt], max_new_tokens=args.max_new_tokens,
                                tools=() if args.disable_tools else None,
                                trigger_top_k=args.trigger_top_k or None, contexts=[ToolContext(date=args.date)],
                                seed=args.seed, on_piece=show)
        print()
        for call in generation.calls:
            print(f"{_DIM}{describe(call)}{_RESET}" if styled else describe(call))
        print()
    return 0


def describe(call: CallRecord) -> str:
    return f"  call {call.tool}({call.input}) -> {call.result!r}  [{call.status}, {call.seconds:.3f} s]"
