"""`jtoolformer train --config FILE --data OUT|TEXTS.jsonl|CORPUS --out DIR [key=value ...]`."""

from __future__ import annotations

import argparse

from jtoolformer.cli.args import add_coordinator_args
from jtoolformer.errors import UsageError
from jtoolformer.sharding import initialize_distributed
from jtoolformer.train.config import load_train_config
from jtoolformer.train.export import export_checkpoint
from jtoolformer.train.loop import train_on


def add_train_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train", help="fine-tune a model on texts (resumes when --out has checkpoints)",
        description="Fine-tune on packed texts. Any config field can be overridden as key=value or "
                    "key.sub=value, e.g. steps=100 optim.learning_rate=3e-5 mesh.fsdp=8.")
    parser.add_argument("--config", help="training config YAML (configs/train_*.yaml); defaults without it")
    parser.add_argument("--data", help="an annotation run directory (its C* in tfds/), a .jsonl of "
                                        "{\"text\": ...} lines, a folder of .txt files, or a TFDS spec "
                                        "NAME[/CONFIG][:VERSION][@SPLIT][#FIELD]")
    parser.add_argument("--eval-data", help="held-out texts, given like --data (perplexity; the best checkpoint "
                                             "is kept); without it data.held_out of --data is held out")
    parser.add_argument("--out", required=True, help="run directory: checkpoints, metrics, exported models")
    parser.add_argument("--export", choices=["best", "latest"],
                        help="only write the run's best or latest params as a HF checkpoint (out/hf/…)")
    add_coordinator_args(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.set_defaults(func=run_train_command)
    return parser


def run_train_command(args: argparse.Namespace) -> int:
    if args.export:
        print(export_checkpoint(args.out, args.export))
        return 0
    cfg = load_train_config(args.config, args.overrides)
    if not args.data:
        raise UsageError("--data is required (unless --export)")
    initialize_distributed(cfg.distributed, args.coordinator, args.num_processes, args.process_id)
    result = train_on(cfg, None, args.data, args.out, args.eval_data)
    if result.history:
        print({k: round(v, 4) for k, v in result.history[-1].items()})
    return 0
