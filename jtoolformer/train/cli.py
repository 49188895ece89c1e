"""`jtoolformer train --config FILE --data TRAIN.jsonl --out DIR [key=value ...]`."""

from __future__ import annotations

import argparse

from jtoolformer.lm import load_model
from jtoolformer.sharding import initialize_distributed
from jtoolformer.train.config import load_train_config
from jtoolformer.train.export import export_checkpoint
from jtoolformer.train.loop import train, train_mesh
from jtoolformer.train.text_batches import held_out_batches, open_text_batches


def add_train_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train", help="fine-tune a model on texts (resumes when --out has checkpoints)",
        description="Fine-tune on packed texts. Any config field can be overridden as key=value or "
                    "key.sub=value, e.g. steps=100 optim.learning_rate=3e-5 mesh.fsdp=8.")
    parser.add_argument("--config", help="training config YAML (configs/train_*.yaml); defaults without it")
    parser.add_argument("--data", help="JSONL of training texts, one {\"text\": ...} per line")
    parser.add_argument("--eval-data", help="JSONL of held-out texts (perplexity; the best checkpoint is kept)")
    parser.add_argument("--out", required=True, help="run directory: checkpoints, metrics, exported models")
    parser.add_argument("--export", choices=["best", "latest"],
                        help="only write the run's best or latest params as a HF checkpoint (out/hf/…)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.set_defaults(func=run_train_command)
    return parser


def run_train_command(args: argparse.Namespace) -> int:
    if args.export:
        print(export_checkpoint(args.out, args.export))
        return 0
    cfg = load_train_config(args.config, args.overrides)
    if not args.data:
        raise SystemExit("jtoolformer train: --data is required (unless --export)")
    initialize_distributed(cfg.distributed)
    lm = load_model(cfg.model, mesh=train_mesh(cfg))
    if lm.tokenizer is None:
        raise SystemExit(f"jtoolformer train: model {cfg.model!r} has no tokenizer to read --data with; "
                         "use a checkpoint directory with tokenizer.json, a .gguf, or smollm2-135m")
    encode = lm.tokenizer.encode
    train_batches = open_text_batches(args.data, encode, cfg.seq_len, cfg.global_batch)
    eval_batches = (held_out_batches(args.eval_data, encode, cfg.seq_len, cfg.global_batch)
                    if args.eval_data else None)
    result = train(cfg, lm, train_batches, eval_batches, args.out)
    if result.history:
        print({k: round(v, 4) for k, v in result.history[-1].items()})
    return 0
