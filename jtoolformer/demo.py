"""`jtoolformer demo`: the whole recipe on the embedded default model and the shipped corpus.

annotate (C*) → fine-tune on C* → generate with tools. Each stage writes under --out and, started
again, continues from what is there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jtoolformer import yaml_config
from jtoolformer.annotate.cli import annotate_corpus, format_table
from jtoolformer.annotate.pipeline import AnnotateConfig
from jtoolformer.data.corpus import DEMO_CORPUS
from jtoolformer.lm import DEFAULT_MODEL

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PROMPTS = (
    "The bakery sold 245 loaves on Monday and 312 on Tuesday, so in the two days it sold",
    "Out of 1400 participants, 400 passed the test, that is",
    "The capital of France is",
)


def run_demo(out: Path, model: str = DEFAULT_MODEL, documents: int = 40, progress: bool = True) -> None:
    cfg = yaml_config.load(AnnotateConfig, CONFIGS / "annotate_demo.yaml")
    print(f"1/3 annotate: {documents} documents of {DEMO_CORPUS.name} with {cfg.tools}")
    stats = annotate_corpus(cfg, model, str(DEMO_CORPUS), out / "annotate", limit=documents, stride=7,
                            progress=progress)
    print(format_table(stats))
    if not stats.get("_c_star_examples"):
        print("No call passed the filter, so there is nothing to fine-tune on; generating with the base model.")
    raise NotImplementedError


def add_demo_command(subparsers) -> None:
    p = subparsers.add_parser("demo", help="annotate → fine-tune → generate with tools, on the embedded default")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--documents", type=int, default=40, help="documents of the demo corpus to annotate")
    p.set_defaults(func=lambda args: run_demo(Path(args.out), args.model, args.documents) or 0)
