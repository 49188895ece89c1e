"""Resumable annotation runs: documents in shards, each written atomically once every tool has
processed it; C*, the statistics and the candidates file are assembled when all shards exist.

A shard's files: NNNNNN.jsonl (its C* records; written last, so its presence marks the shard done),
NNNNNN.stats.json, NNNNNN.candidates.jsonl and NNNNNN.positions.jsonl. A run started again with the
same settings skips finished shards and, because every random key is derived from the document id,
position and sample index, produces exactly the output of an unbroken run.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
from tqdm import tqdm

from jtoolformer.annotate.candidates_file import CANDIDATES_FILE, POSITIONS_FILE, concatenate
from jtoolformer.annotate.dataset import build_c_star
from jtoolformer.annotate.pipeline import Annotation, Annotator
from jtoolformer.annotate.stats import AnnotationStats
from jtoolformer.sharding import sync_hosts


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_shard(path: Path, annotation: Annotation, candidates: bool) -> None:
    write_atomic(path.with_suffix(".stats.json"), json.dumps({k: v.to_dict() for k, v in annotation.stats.items()}))
    if candidates:
        write_atomic(path.with_suffix(".candidates.jsonl"), "".join(c.to_json() + "\n" for c in annotation.candidates))
        write_atomic(path.with_suffix(".positions.jsonl"),
                     "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in annotation.positions))
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in annotation.records))


def _check_settings(annotator: Annotator, documents: Sequence[dict], out: Path) -> None:
    settings = {"config": annotator.cfg.fingerprint(), "tools": sorted(annotator.tools),
                "model": dataclasses.asdict(annotator.lm.config), "documents": len(documents)}
    settings_path = out / "settings.json"
    if jax.process_index() == 0 and not settings_path.exists():
        write_atomic(settings_path, json.dumps(settings, indent=1))
    sync_hosts("annotation settings written")
    if json.loads(settings_path.read_text()) != settings:
        raise ValueError(f"{out} holds a run with other settings ({settings_path}); use a new --out "
                         "or delete it to start over")


def run_annotation(annotator: Annotator, documents: Sequence[dict], out_dir: str | Path, *,
                   progress: bool = True, after_shard: Callable[[int], None] | None = None,
                   corpus_skipped: Mapping[str, int] | None = None) -> dict:
    """Annotates `documents` into out_dir/shards, resuming after finished shards; when every shard is
    done, builds the C* TFDS dataset in out_dir/tfds and writes out_dir/stats.json (and the
    candidates file). Returns the stats, with `corpus_skipped` (bad documents the corpus left out, by
    reason) under "_corpus_skipped".

    On several hosts (jax.distributed), every host runs this with the same documents and an out_dir
    they share; host h annotates shards h, h + hosts, …, and host 0 builds C* once all are written.
    The hosts' models are independent replicas (meshes over each host's own devices)."""
    process_index, process_count = jax.process_index(), jax.process_count()
    out = Path(out_dir)
    shards_dir = out / "shards"
    shards_dir.mkdir(parents=True, exist_ok=True)
    _check_settings(annotator, documents, out)
    size = annotator.cfg.shard_size
    n_shards = -(-len(documents) // size)
    mine = range(process_index, n_shards, process_count)
    bar = tqdm(total=len(mine), desc="shards", disable=not progress)
    for shard in mine:
        path = shards_dir / f"{shard:06d}.jsonl"
        if not path.exists():
            annotation = annotator.annotate(list(documents[shard * size : (shard + 1) * size]), progress)
            _write_shard(path, annotation, annotator.cfg.write_candidates)
            if after_shard is not None:
                after_shard(shard)
        bar.update()
    bar.close()
    sync_hosts("annotation shards written")
    all_paths = [shards_dir / f"{s:06d}.jsonl" for s in range(n_shards)]
    if process_index != 0 or not all(p.exists() for p in all_paths):
        return {}
    return _assemble(annotator, all_paths, out, corpus_skipped)


def _assemble(annotator: Annotator, all_paths: list[Path], out: Path, corpus_skipped: Mapping[str, int] | None) -> dict:
    totals = {name: AnnotationStats() for name in annotator.tools}
    for p in all_paths:
        for name, d in json.loads(p.with_suffix(".stats.json").read_text()).items():
            totals[name].add(AnnotationStats.from_dict(d))
    summary: dict = {name: s.to_dict() for name, s in totals.items()}
    summary["_corpus_skipped"] = dict(corpus_skipped or {})
    summary["_c_star_examples"] = sum(1 for p in all_paths for _ in p.read_text().splitlines())
    if summary["_c_star_examples"]:  # TFDS cannot hold an empty split; no kept call is a valid outcome
        build_c_star(all_paths, out / "tfds")
    if annotator.cfg.write_candidates:
        concatenate((p.with_suffix(".candidates.jsonl") for p in all_paths), out / CANDIDATES_FILE)
        concatenate((p.with_suffix(".positions.jsonl") for p in all_paths), out / POSITIONS_FILE)
    write_atomic(out / "stats.json", json.dumps(summary, indent=1))
    return summary
