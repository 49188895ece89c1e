"""`jtoolformer demo`: the whole recipe on the embedded default model and the shipped corpus.

annotate (C*) → fine-tune on C* → generate with tools. Each stage writes under --out and, started
again, continues from what is there.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

from jtoolformer import config
from jtoolformer.annotate.cli import annotate_corpus, format_table
from jtoolformer.annotate.pipeline import AnnotateConfig
from jtoolformer.cli.args import add_dtype_arg, at_least, dtype_overrides
from jtoolformer.data.corpus import DEMO_CORPUS
from jtoolformer.generate.session import ToolGenerator
from jtoolformer.lm import DEFAULT_MODEL, load_model
from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.cli import add_backend_args, backends_from_args
from jtoolformer.tools.registry import ToolBackends, describe_backends
from jtoolformer.train import train_on
from jtoolformer.train.config import load_train_config
from jtoolformer.train.loop import train_mesh

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PROMPTS = (
    "The bakery sold 245 loaves on Monday and 312 on Tuesday, so in the two days it sold",
    "Out of 1400 participants, 400 passed the test, that is",
    "Of 2500 apples, 300 [Calculator(300 / 2500) -> 0.12] 12% were bad. Of 800 cars, 200 were red, which is",
    "Out of 1400 participants, 400 (or [Calculator(400 / 1400) ->",  # a call the prompt opens: executed
)


def run_demo(out: Path, model: str = DEFAULT_MODEL, documents: int = 40, progress: bool = True,
             backends: ToolBackends | None = None, dtype: str | None = None) -> None:
    """`backends`: what backs WikiSearch, QA and MT, over the demo config's (the bundled passages);
    `dtype`: the model's for annotation and generation (fine-tuning follows configs/train_demo.yaml)."""
    cfg = config.load(AnnotateConfig, CONFIGS / "annotate_demo.yaml")
    if backends is not None:
        cfg = dataclasses.replace(cfg, index=backends.index or cfg.index, mt_model=backends.mt_model or cfg.mt_model)
    print(f"1/3 annotate: {documents} documents of {DEMO_CORPUS.name} with {cfg.tools}")
    stats = annotate_corpus(cfg, model, str(DEMO_CORPUS), out / "annotate", limit=documents, stride=7,
                            progress=progress, dtype=dtype)
    print(format_table(stats))
    examples = stats.get("_c_star_examples", 0)
    lm = None
    if examples:
        held_out = "1" if examples >= 4 else "0"
        train_cfg = load_train_config(CONFIGS / "train_demo.yaml", [f"model={model}", f"data.held_out={held_out}"])
        print(f"\n2/3 fine-tune on C* ({examples} examples), {train_cfg.steps} steps")
        lm = load_model(model, mesh=train_mesh(train_cfg))
        train_on(train_cfg, lm, out / "annotate", out / "train")
    else:
        print("\n2/3 no call passed the filter, so there is nothing to fine-tune on: the base model generates")
        lm = load_model(model, **dtype_overrides(dtype))
    print("\n3/3 generate with tools")
    show_generations(lm, PROMPTS, ToolBackends(cfg.index, cfg.mt_model))


def add_demo_command(subparsers) -> None:
    p = subparsers.add_parser("demo", help="annotate → fine-tune → generate with tools, on the embedded default")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--documents", type=at_least(1), default=40, help="documents of the demo corpus to annotate")
    add_dtype_arg(p)
    add_backend_args(p)
    p.set_defaults(func=lambda args: run_demo(Path(args.out), args.model, args.documents,
                                              backends=backends_from_args(args), dtype=args.dtype) or 0)


def show_generations(lm, prompts, backends: ToolBackends = ToolBackends()) -> None:
    """Greedy decoding with the paper's top-10 trigger and one call per prompt; calls in colour."""
    tools = backends.make_tools("calculator,calendar,wikisearch", generator=lm)
    for line in describe_backends(tools):
        print(line)
    generator = ToolGenerator(lm, tools)
    context = ToolContext(date=datetime.date.today())
    for prompt, gen in zip(prompts, generator(list(prompts), max_new_tokens=32, contexts=[context] * len(prompts))):
        text = gen.text.split("\n")[0]
        print(f"{prompt}\033[1m{text}\033[0m")
        for call in gen.calls:
            print(f"    ↳ {call.tool}({call.input}) → {call.result!r} in {call.seconds * 1000:.0f} ms")
