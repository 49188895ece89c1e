"""`jtoolformer annotate`: a corpus → C* (TFDS) plus the paper's Table-2 statistics."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jax

from jtoolformer import config
from jtoolformer.annotate.candidates_file import CANDIDATES_FILE, OUTCOMES, summary
from jtoolformer.annotate.pipeline import AnnotateConfig, Annotator, prompt_overrides
from jtoolformer.annotate.shards import run_annotation
from jtoolformer.cli.args import add_coordinator_args, add_dtype_arg, at_least, dtype_overrides, mesh_from_text
from jtoolformer.data.corpus import DEMO_CORPUS, open_corpus
from jtoolformer.data.documents import describe_skips
from jtoolformer.lm import DEFAULT_MODEL, load_model
from jtoolformer.sharding import initialize_distributed
from jtoolformer.tools.cli import add_backend_args, backends_from_args
from jtoolformer.tools.registry import ToolBackends, describe_backends, tool_keys


def annotate_corpus(cfg: AnnotateConfig, model: str, corpus: str, out: Path, mesh_sizes: str = "-1,1,1",
                    data_dir: str | None = None, limit: int = 0, stride: int = 1, progress: bool = True,
                    dtype: str | None = None) -> dict:
    """Checks the mesh, the tools, the output directory and the corpus, then loads the model onto this
    host's devices and the tools, annotates this host's share of every `stride`-th document of the corpus
    (the first `limit` of them, when given); returns the statistics (on host 0; {} on the others)."""
    mesh = mesh_from_text(mesh_sizes)
    prompt_overrides(cfg.prompts, tool_keys(cfg.tools))
    backends = ToolBackends(cfg.index, cfg.mt_model)
    backends.check()
    out.mkdir(parents=True, exist_ok=True)
    documents = open_corpus(corpus, data_dir or str(out / "corpus_tfds"))
    if jax.process_index() == 0:
        config.save(cfg, out / "annotate_config.yaml")
    lm = load_model(model, mesh=mesh, **dtype_overrides(dtype))
    tools = backends.make_tools(cfg.tools, generator=lm)
    for line in describe_backends(tools):
        print(line)
    return run_annotation(Annotator(lm, tools, cfg), documents[::stride][: limit or None], out, progress=progress,
                          corpus_skipped=documents.skipped)


def _run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + ([f"tools={args.tools}"] if args.tools else []) \
        + ([f"prompts={','.join(args.prompt)}"] if args.prompt else [])
    cfg = config.load(AnnotateConfig, args.config, overrides)
    backends = backends_from_args(args, ToolBackends(cfg.index, cfg.mt_model))
    cfg = dataclasses.replace(cfg, index=backends.index, mt_model=backends.mt_model)
    initialize_distributed(args.distributed, args.coordinator, args.num_processes, args.process_id)
    stats = annotate_corpus(cfg, args.model, args.corpus, Path(args.out), args.mesh, args.data_dir, args.limit,
                            dtype=args.dtype)
    if stats:
        print(format_table(stats))
        if stats["_corpus_skipped"]:
            print(f"the corpus left out bad documents: {describe_skips(stats['_corpus_skipped'])}")
        print(f"C*: {stats['_c_star_examples']} examples in {Path(args.out) / 'tfds'}; statistics in "
              f"{Path(args.out) / 'stats.json'}")
        if not stats["_c_star_examples"]:
            print(f"No call was kept: C* is empty. Why each sampled call was dropped: "
                  f"`jtoolformer candidates {args.out}` ({Path(args.out) / CANDIDATES_FILE})")
    return 0


def format_table(stats: dict) -> str:
    """Per-tool counts like the paper's Table 2."""
    cols = ["documents", "prefiltered", "positions", "calls_sampled", "well_formed", "executed"]
    head = ["tool", *cols, "kept τf=0.5", "τf=1", "τf=2"]
    rows = [head]
    for tool, s in stats.items():
        if tool.startswith("_"):
            continue
        kept = s["kept"]
        rows.append([tool, *(str(s[c]) for c in cols), *(str(kept.get(t, 0)) for t in ("0.5", "1.0", "2.0"))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)


def add_annotate_command(subparsers) -> None:
    p = subparsers.add_parser("annotate", help="build C*: sample, execute and filter API calls over a corpus")
    p.add_argument("--config", default=None, help="YAML of AnnotateConfig fields (e.g. configs/annotate_demo.yaml)")
    p.add_argument("--tools", default=None, help="comma-separated: calculator,calendar,wikisearch,qa,mt")
    p.add_argument("--corpus", default=str(DEMO_CORPUS),
                   help="JSONL file, folder of .txt, or TFDS spec NAME[/CONFIG][:VERSION][@SPLIT][#FIELD]")
    p.add_argument("--data-dir", default=None, help="TFDS data dir for the corpus")
    p.add_argument("--out", required=True)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--mesh", default="-1,1,1", help="data,fsdp,tensor over this host's devices")
    add_dtype_arg(p)
    p.add_argument("--limit", type=at_least(0), default=0, help="only the first N documents")
    p.add_argument("--distributed", action="store_true",
                   help="one process per host (jax.distributed); all share --out and annotate their shards")
    add_coordinator_args(p)
    add_backend_args(p)
    p.add_argument("--prompt", action="append", default=[], metavar="TOOL=FILE",
                   help="your own few-shot prompt for a tool (format of jtoolformer/tools/prompts/*.txt); repeatable")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    p.set_defaults(func=_run)


def add_candidates_command(subparsers) -> None:
    p = subparsers.add_parser("candidates", help="why an annotation run kept or dropped each sampled call")
    p.add_argument("run", help="an annotate --out directory")
    p.add_argument("--outcome", default=None, choices=OUTCOMES, help="only calls with this outcome")
    p.add_argument("--doc", default=None, help="only this document id")
    p.add_argument("--limit", type=at_least(0), default=20, help="calls shown (best gain first)")
    p.set_defaults(func=lambda args: print(summary(Path(args.run), args.outcome, args.doc, args.limit)) or 0)

