"""The annotation run: corpus → per-tool candidates → execution → filter → merged C*, in resumable shards.

Documents are split into shards of `shard_size` (host h of n takes shards h, h+n, …). A shard is
written atomically, with its statistics beside it, once every tool has processed it; a run started
again with the same settings skips finished shards and, because every random key is derived from
the document id, position and sample index, produces exactly the C* of an unbroken run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jax
from tqdm import tqdm

from jtoolformer.annotate.candidates import SENTINEL, CandidateSampler, Document
from jtoolformer.annotate.dataset import build_c_star
from jtoolformer.annotate.merge import KeptCall, choose_calls, insert_calls
from jtoolformer.annotate.scoring import Scorer, ScoreRequest
from jtoolformer.decoding import Sampling
from jtoolformer.sharding import sync_hosts
from jtoolformer.tools.base import Tool, ToolContext
from jtoolformer.tools.calls import ARROWS, CALL_END, ToolCall, clean_result, format_call, parse_partial_call
from jtoolformer.tools.executor import ToolExecutor, ToolRequest
from jtoolformer.yaml_config import Checked, setting

REPORT_THRESHOLDS = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class AnnotateConfig(Checked):
    tools: str = "calculator,calendar,wikisearch"
    seed: int = setting(0, ge=0)
    batch_docs: int = setting(16, ge=1)  # documents per stage-1 batch
    shard_size: int = setting(64, ge=1)  # documents per output shard
    max_doc_tokens: int = setting(256, ge=1)  # longer documents are skipped (counted)
    max_call_tokens: int = setting(32, ge=1)
    max_rows: int = setting(64, ge=1)  # rows per scoring call
    temperature: float = setting(1.0, gt=0)  # for sampling calls
    tool_timeout_s: float = setting(10.0, ge=0)  # 0: no limit
    max_positions: int = setting(0, ge=0)  # k; 0: the tool's own (paper) value
    calls_per_position: int = setting(0, ge=0)  # m; 0: the tool's own (paper) value
    filter_threshold: float | None = setting(None)  # τ_f; None: the tool's own (paper) value
    index: str | None = None  # WikiSearch and QA passages: an index directory (`index build`); None: the demo set
    mt_model: str | None = None  # MT: a seq2seq checkpoint directory (e.g. NLLB); None: the LM prompted to translate

    def fingerprint(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ToolStats:
    """Table 2 of the paper, per tool."""

    documents: int = 0
    prefiltered: int = 0  # passed the tool's pre-filter
    skipped: Counter = field(default_factory=Counter)
    positions: int = 0
    calls_sampled: int = 0
    well_formed: int = 0
    executed: int = 0  # returned a non-empty result
    kept: Counter = field(default_factory=Counter)  # by τ_f (as str), plus "tool" for the tool's own τ_f

    def add(self, other: "ToolStats") -> None:
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, a + b)

    def to_dict(self) -> dict:
        return {f.name: dict(getattr(self, f.name)) if isinstance(getattr(self, f.name), Counter)
                else getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "ToolStats":
        return cls(**{k: Counter(v) if isinstance(v, dict) else v for k, v in d.items()})


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def _cut_call(text: str) -> str:
    """A sampled call up to its first "]" or arrow."""
    ends = [text.find(m) + len(m) for m in (CALL_END, *ARROWS) if m in text]
    return text[: min(ends)] if ends else text


class Annotator:
    """Annotates documents with one LM and a set of tools."""

    def __init__(self, lm, tools: dict[str, Tool], cfg: AnnotateConfig):
        if lm.tokenizer is None:
            raise ValueError("annotation needs a model with a tokenizer")
        self.lm, self.tools, self.cfg = lm, tools, cfg
        sampling = Sampling(temperature=cfg.temperature)
        self.samplers = {name: CandidateSampler(lm, tool.render_prompt(SENTINEL), max_call_tokens=cfg.max_call_tokens,
                                                sampling=sampling)
                         for name, tool in tools.items()}
        self.scorer = Scorer(lm, max_rows=cfg.max_rows)
        self.executor = ToolExecutor(tools, timeout_s=cfg.tool_timeout_s)
        self.base_key = jax.random.key(cfg.seed)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def _doc_key(self, doc_id: str, tool: str) -> jax.Array:
        return jax.random.fold_in(jax.random.fold_in(self.base_key, _stable_int(doc_id)), _stable_int(tool))

    def annotate(self, documents: Sequence[dict], progress: bool = False) -> tuple[list[dict], dict[str, ToolStats]]:
        """C* records for the documents that keep at least one call, and per-tool statistics."""
        candidates: dict[int, list[KeptCall]] = {}
        stats = {}
        for name in self.tools:
            stats[name], kept = self._annotate_tool(name, documents, progress)
            for doc_index, calls in kept.items():
                candidates.setdefault(doc_index, []).extend(calls)
        records = []
        for k, doc in enumerate(documents):
            calls, leaked = choose_calls(candidates.get(k, []), doc["text"])
            for call in leaked:
                stats[call.tool].skipped["leaking_call"] += 1
            if calls:
                records.append({"id": doc["id"], "text": insert_calls(doc["text"], calls), "original": doc["text"],
                                "url": doc.get("url", ""), "date": doc.get("date", ""),
                                "calls": [c.record() for c in calls]})
        return records, stats

    def _prepare(self, name: str, documents: Sequence[dict], stats: ToolStats):
        tool, sampler, tok = self.tools[name], self.samplers[name], self.lm.tokenizer
        ready = []
        for k, doc in enumerate(documents):
            stats.documents += 1
            text = doc.get("text", "")
            if not text.strip():
                stats.skipped["empty"] += 1
                continue
            context = ToolContext.from_metadata(doc)
            if not tool.prefilter(text, context):
                continue
            stats.prefiltered += 1
            x = tok.encode(text)
            prepared = sampler.prepare(x, text)
            if len(x) > self.cfg.max_doc_tokens or sampler.context_needed(prepared) > self.lm.config.max_positions:
                stats.skipped["too_long"] += 1
                continue
            ready.append((k, prepared, context))
        return ready

    def _annotate_tool(self, name: str, documents: Sequence[dict], progress: bool):
        stats = ToolStats()
        ready = self._prepare(name, documents, stats)
        batches = [ready[s : s + self.cfg.batch_docs] for s in range(0, len(ready), self.cfg.batch_docs)]
        kept: dict[int, list[KeptCall]] = {}
        pending = None
        bar = tqdm(total=len(batches), desc=f"annotate {name}", unit="batch", disable=not progress, leave=False)
        for batch in [*batches, None]:
            if batch:
                _show(bar, "sampling (previous batch executing)" if pending else "sampling", stats)
            started = self._sample(name, batch, documents, stats) if batch else None
            if pending is not None:
                _show(bar, "filtering", stats)
                for doc_index, calls in self._filter(name, *pending, stats).items():
                    kept.setdefault(doc_index, []).extend(calls)
                bar.update()
            pending = started
        _show(bar, "done", stats)
        bar.close()
        return stats, kept

    def _sample(self, name: str, batch, documents, stats: ToolStats):
        """Stages 1–2 on the device, then stage 3 submitted to the executor in the background."""
        tool, sampler = self.tools[name], self.samplers[name]
        docs: list[Document] = [d for _, d, _ in batch]
        texts = [documents[k]["text"] for k, _, _ in batch]
        starts = [_token_starts(self.lm.tokenizer, texts[r], d.x) for r, d in enumerate(docs)]
        positions, state = sampler.positions(
            docs, tool.sampling.position_threshold, self.cfg.max_positions or tool.sampling.max_positions,
            allowed=lambda r, i: _at_word_boundary(texts[r], starts[r][i]))
        stats.positions += len(positions)
        keys = [self._doc_key(documents[k]["id"], name) for k, _, _ in batch]
        m = self.cfg.calls_per_position or tool.sampling.calls_per_position
        sampled = sampler.sample_calls(docs, positions, state, m, keys)
        stats.calls_sampled += len(sampled)
        parsed: dict[tuple[int, int, ToolCall], None] = {}
        for s in sampled:
            call = parse_partial_call(_cut_call(s.text), [tool.name])
            if call is not None and call.input.strip():
                stats.well_formed += 1
                parsed[(s.doc, s.i, call)] = None
        unique = list(parsed)
        requests = [ToolRequest(call, batch[doc][2]) for doc, _, call in unique]
        future = self._pool.submit(self.executor.run, requests)
        return batch, unique, future

    def _filter(self, name, batch, unique, future, stats: ToolStats) -> dict[int, list[KeptCall]]:
        """Stage 4: keep a call when min(L(ε), L(e(c, ε))) − L(e(c, r)) ≥ τ_f."""
        tool, tok = self.tools[name], self.lm.tokenizer
        results = [clean_result(r.text) for r in future.result()]
        requests: dict[ScoreRequest, None] = {}
        scored = []
        for (doc, i, call), result in zip(unique, results):
            if not result:
                continue
            stats.executed += 1
            x = batch[doc][1].x
            with_result = ScoreRequest(tuple(tok.encode(format_call(call, result, quoted=tool.quoted_input))), x, i)
            without = ScoreRequest(tuple(tok.encode(format_call(call, "", quoted=tool.quoted_input))), x, i)
            empty = ScoreRequest((), x, i)
            requests.update(dict.fromkeys([with_result, without, empty]))
            scored.append((doc, i, call, result, with_result, without, empty))
        if not scored:
            return {}
        order = list(requests)
        losses = dict(zip(order, self.scorer(order)))
        kept: dict[int, list[KeptCall]] = {}
        for doc, i, call, result, plus, minus_call, minus_empty in scored:
            loss_plus = float(losses[plus])
            loss_minus = float(min(losses[minus_call], losses[minus_empty]))
            gain = loss_minus - loss_plus
            for threshold in REPORT_THRESHOLDS:
                stats.kept[str(threshold)] += gain >= threshold
            threshold = self.cfg.filter_threshold
            if gain < (tool.sampling.filter_threshold if threshold is None else threshold):
                continue
            k = batch[doc][0]
            char_position = _char_position(tok, batch[doc][1].x, i)
            if char_position is None:
                stats.skipped["unaligned_position"] += 1
                continue
            stats.kept["tool"] += 1
            kept.setdefault(k, []).append(KeptCall(tool.name, call.input, result, i, char_position, loss_plus,
                                                   loss_minus, tool.quoted_input))
        return kept


def _show(bar: tqdm, stage: str, stats: ToolStats) -> None:
    bar.set_postfix_str(f"{stage}; positions {stats.positions}, calls {stats.calls_sampled}, "
                        f"executed {stats.executed}, kept {stats.kept['tool']}")


def _token_starts(tok, text: str, x: tuple[int, ...]) -> list[int]:
    """Character offset where each token of x begins in text (-1 where the tokenizer gives none)."""
    encoding = tok.hf.encode(text, add_special_tokens=False)
    if tuple(encoding.ids) != x:
        return [-1] * len(x)
    return [start for start, _ in encoding.offsets]


def _at_word_boundary(text: str, start: int) -> bool:
    """Whether a call may go before the token starting at `start`: not inside a word or number
    (tokenizers that split digits one by one would otherwise put calls inside numbers)."""
    if start <= 0 or start >= len(text):
        return start > 0
    return not (text[start - 1].isalnum() and text[start].isalnum())


def _char_position(tok, x: tuple[int, ...], i: int) -> int | None:
    """Characters of the text before token i, when tokens 0..i−1 decode to exactly that prefix."""
    full = tok.decode(list(x))
    head = tok.decode(list(x[:i]))
    return len(head) if full.startswith(head) and "\ufffd" not in head else None


# --- resumable runs ------------------------------------------------------------------------------

def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run_annotation(annotator: Annotator, documents: Sequence[dict], out_dir: str | Path, *,
                   progress: bool = True, after_shard: Callable[[int], None] | None = None,
                   corpus_skipped: Mapping[str, int] | None = None) -> dict:
    """Annotates `documents` into out_dir/shards, resuming after finished shards; when every shard is
    done, builds the C* TFDS dataset in out_dir/tfds and writes out_dir/stats.json. Returns the stats,
    with `corpus_skipped` (bad documents the corpus left out, by reason) under "_corpus_skipped".

    On several hosts (jax.distributed), every host runs this with the same documents and an out_dir
    they share; host h annotates shards h, h + hosts, …, and host 0 builds C* once all are written.
    The hosts' models are independent replicas (meshes over each host's own devices)."""
    process_index, process_count = jax.process_index(), jax.process_count()
    out = Path(out_dir)
    shards_dir = out / "shards"
    shards_dir.mkdir(parents=True, exist_ok=True)
    settings = {"config": annotator.cfg.fingerprint(), "tools": sorted(annotator.tools),
                "model": dataclasses.asdict(annotator.lm.config), "documents": len(documents)}
    settings_path = out / "settings.json"
    if process_index == 0 and not settings_path.exists():
        _write_atomic(settings_path, json.dumps(settings, indent=1))
    sync_hosts("annotation settings written")
    if json.loads(settings_path.read_text()) != settings:
        raise ValueError(f"{out} holds a run with other settings ({settings_path}); use a new --out "
                         "or delete it to start over")
    size = annotator.cfg.shard_size
    n_shards = -(-len(documents) // size)
    mine = range(process_index, n_shards, process_count)
    bar = tqdm(total=len(mine), desc="shards", disable=not progress)
    for shard in mine:
        path = shards_dir / f"{shard:06d}.jsonl"
        if path.exists():
            bar.update()
            continue
        records, stats = annotator.annotate(list(documents[shard * size : (shard + 1) * size]), progress)
        _write_atomic(path.with_suffix(".stats.json"), json.dumps({k: v.to_dict() for k, v in stats.items()}))
        _write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
        bar.update()
        if after_shard is not None:
            after_shard(shard)
    bar.close()
    sync_hosts("annotation shards written")
    all_paths = [shards_dir / f"{s:06d}.jsonl" for s in range(n_shards)]
    totals = {name: ToolStats() for name in annotator.tools}
    if process_index == 0 and all(p.exists() for p in all_paths):
        for p in all_paths:
            for name, d in json.loads(p.with_suffix(".stats.json").read_text()).items():
                totals[name].add(ToolStats.from_dict(d))
        summary = {name: s.to_dict() for name, s in totals.items()}
        summary["_corpus_skipped"] = dict(corpus_skipped or {})
        summary["_c_star_examples"] = sum(1 for p in all_paths for _ in p.read_text().splitlines())
        if summary["_c_star_examples"]:  # TFDS cannot hold an empty split; no kept call is a valid outcome
            build_c_star(all_paths, out / "tfds")
        _write_atomic(out / "stats.json", json.dumps(summary, indent=1))
        return summary
    return {}
