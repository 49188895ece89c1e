"""Annotating a batch of documents, in the paper's stage order: per tool, stage 1 (positions, the
call-site rule included) and 2 (calls) on the device in candidates.py, stage 3 (execution) on the host
in the background, stage 4 (filter.py); then the tools' kept calls merged (merge.py). This module only
orchestrates; resumable runs over a whole corpus are in shards.py."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import jax
from tqdm import tqdm

from jtoolformer.annotate.call_sites import CALL_SITE_RULES
from jtoolformer.annotate.candidates import SENTINEL, CandidateSampler, Document, read_calls
from jtoolformer.annotate.candidates_file import Candidate
from jtoolformer.annotate.filter import ExecutedCall, FilterSettings, Scorer, filter_calls
from jtoolformer.annotate.merge import KeptCall, merge_document
from jtoolformer.annotate.stats import AnnotationStats
from jtoolformer.config import Checked, setting
from jtoolformer.errors import UsageError
from jtoolformer.generate.sampling import Sampling
from jtoolformer.host_memory import map_large_blocks_alone
from jtoolformer.tools.base import Tool, ToolContext, read_prompt_file
from jtoolformer.tools.calls import ToolCall, clean_result
from jtoolformer.tools.executor import CallStatus, ToolExecutor, ToolRequest
from jtoolformer.tools.text import fill_template


@dataclass(frozen=True)
class AnnotateConfig(Checked):
    tools: str = "calculator,calendar,wikisearch"
    seed: int = setting(0, ge=0)
    batch_docs: int = setting(16, ge=1)  # documents per stage-1 batch
    shard_size: int = setting(64, ge=1)  # documents per output shard
    max_doc_tokens: int = setting(256, ge=1)  # longer documents are skipped (counted)
    max_call_tokens: int = setting(32, ge=1)
    max_rows: int = setting(16, ge=1)  # rows per scoring call (each row 256 tokens: ~60 MB of host memory with SmolLM2)
    temperature: float = setting(1.0, gt=0)  # for sampling calls
    tool_timeout_s: float = setting(10.0, ge=0)  # 0: no limit
    positions_per_doc: int = setting(0, ge=0)  # k; 0: the tool's own (paper) value
    calls_per_position: int = setting(0, ge=0)  # m; 0: the tool's own (paper) value
    filter_threshold: float | None = setting(None)  # τ_f; None: the tool's own (paper) value
    max_decode_rows: int = setting(192, ge=1)  # calls decoded together in stage 2 (bounds memory at any k, m)
    max_position_tokens: int = setting(512, ge=1)  # padded tokens per stage-1 forward (bounds it at any batch_docs)
    max_prefix_tokens: int = setting(16384, ge=1)  # stage 2: head + tail tokens of the documents decoded together
    call_sites: str = setting("word_boundary", choices=CALL_SITE_RULES)  # stage-1 positions (call_sites.py)
    # stage 4: "prefix" (the paper) or "inline": z scored where it is inserted, against the call without result
    filter_placement: str = setting("prefix", choices=("prefix", "inline"))
    call_head: str = setting("free", choices=("free", "forced"))  # stage 2: "forced" feeds "Tool(" after the API start
    # stage 4: "none" (the paper) or "stated_next": a call is scored only when it computes something and
    # the text's next number is its result (filter.states_result)
    result_check: str = setting("none", choices=("none", "stated_next"))
    prompts: str = ""  # the user's own few-shot prompts: "calculator=my_prompt.txt,qa=…"
    write_candidates: bool = True  # candidates.jsonl and positions.jsonl beside C* (candidates_file.py)
    index: str | None = None  # WikiSearch and QA passages: an index directory (`index build`); None: the demo set
    mt_model: str | None = None  # MT: a seq2seq checkpoint directory (e.g. NLLB); None: the LM prompted to translate

    def fingerprint(self) -> dict:
        return dataclasses.asdict(self)


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


class Annotator:
    """Annotates documents with one LM and a set of tools. Sets glibc to give large freed blocks back
    to the operating system at once (host_memory.map_large_blocks_alone), for the whole process."""

    def __init__(self, lm, tools: dict[str, Tool], cfg: AnnotateConfig):
        if lm.tokenizer is None:
            raise ValueError("annotation needs a model with a tokenizer")
        map_large_blocks_alone()
        self.lm, self.tools, self.cfg = lm, tools, cfg
        sampling = Sampling(temperature=cfg.temperature)
        prompts = prompt_overrides(cfg.prompts, tools)
        self.samplers = {name: CandidateSampler(lm, prompts.get(name) or tool.render_prompt(SENTINEL),
                                                max_call_tokens=cfg.max_call_tokens, sampling=sampling,
                                                call_head=call_head(tool) if cfg.call_head == "forced" else "",
                                                max_position_tokens=cfg.max_position_tokens, call_sites=cfg.call_sites)
                         for name, tool in tools.items()}
        self.scorer = Scorer(lm, max_rows=cfg.max_rows)
        self.executor = ToolExecutor(tools, timeout_s=cfg.tool_timeout_s)
        self.base_key = jax.random.key(cfg.seed)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def _doc_key(self, doc_id: str, tool: str) -> jax.Array:
        return jax.random.fold_in(jax.random.fold_in(self.base_key, _stable_int(doc_id)), _stable_int(tool))

    def annotate(self, documents: Sequence[dict], progress: bool = False) -> Annotation:
        """C* records for the documents that keep at least one call, per-tool statistics, and every
        sampled call with its outcome."""
        found: dict[int, list[tuple[KeptCall, Candidate]]] = {}
        stats, candidates, positions = {}, [], []
        for name in self.tools:
            run = _ToolRun(stats=AnnotationStats())
            self._annotate_tool(name, documents, progress, run)
            stats[name] = run.stats
            candidates += run.candidates
            positions += run.positions
            for doc_index, calls in run.kept.items():
                found.setdefault(doc_index, []).extend(calls)
        records = [merge_document(doc, found.get(k, []), stats) for k, doc in enumerate(documents)]
        return Annotation([r for r in records if r is not None], stats, candidates, positions)

    def _prepare(self, name: str, documents: Sequence[dict], stats: AnnotationStats):
        """(index, prepared document, context) of each document the tool may annotate."""
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

    def _annotate_tool(self, name: str, documents: Sequence[dict], progress: bool, run: _ToolRun) -> None:
        ready = self._prepare(name, documents, run.stats)
        # batched by tail length: each batch pads to its own longest, so few are padded to the shard's
        ready.sort(key=lambda item: len(item[1].tail))
        batches = [ready[s : s + self.cfg.batch_docs] for s in range(0, len(ready), self.cfg.batch_docs)]
        pending = None
        bar = tqdm(total=len(batches), desc=f"annotate {name}", unit="batch", disable=not progress, leave=False)
        for batch in [*batches, None]:
            if batch:
                _show(bar, "sampling (previous batch executing)" if pending else "sampling", run.stats)
            started = self._sample(name, batch, documents, run, len(batches[0])) if batch else None
            if pending is not None:
                _show(bar, "filtering", run.stats)
                self._filter(name, *pending, documents, run)
                bar.update()
            pending = started
        _show(bar, "done", run.stats)
        bar.close()
        order = {str(doc["id"]): k for k, doc in enumerate(documents)}  # outputs in document order again
        run.positions.sort(key=lambda record: order[record["id"]])
        run.candidates.sort(key=lambda candidate: order[candidate.id])

    def _sample(self, name: str, batch, documents, run: _ToolRun, pad_to_docs: int):
        """Stages 1–2 on the device, then stage 3 submitted to the executor in the background. Batches
        are padded to the first's size (pad_to_docs), so a smaller last batch compiles nothing new."""
        tool, sampler, stats = self.tools[name], self.samplers[name], run.stats
        docs: list[Document] = [d for _, d, _ in batch]
        ids = [str(documents[k]["id"]) for k, _, _ in batch]
        k = self.cfg.positions_per_doc or tool.sampling.positions_per_doc
        scores, positions, prefixes = sampler.positions(docs, tool.sampling.position_threshold, k,
                                                        pad_to_docs=pad_to_docs)
        ranks = [{i: rank for rank, i in enumerate(sorted(s, key=lambda i: (-s[i], i)), 1)} for s in scores]
        run.positions += [{"id": ids[r], "tool": tool.name,
                           "scores": [[docs[r].starts[i], p] for i, p in sorted(s.items())]} for r, s in enumerate(scores)]
        stats.positions += len(positions)
        keys = [self._doc_key(documents[k]["id"], name) for k, _, _ in batch]
        m = self.cfg.calls_per_position or tool.sampling.calls_per_position
        sampled = sampler.sample_calls(docs, positions, prefixes, m, keys, max_rows=self.cfg.max_decode_rows,
                                       max_prefix_tokens=self.cfg.max_prefix_tokens, calls_per_doc=k * m)
        stats.calls_sampled += len(sampled)
        p_at = {(pos.doc, pos.i): pos.p for pos in positions}
        samples = [Candidate(ids[s.doc], tool.name, s.i, docs[s.doc].starts[s.i], p_at[s.doc, s.i],
                             ranks[s.doc][s.i], s.sample, s.text) for s in sampled]
        run.candidates += samples
        unique = read_calls(tool, sampled, samples)
        stats.well_formed += sum(len(twins) for twins in unique.values())
        requests = [ToolRequest(call, batch[doc][2]) for doc, _, call in unique]
        future = self._pool.submit(self.executor.run, requests)
        return batch, unique, future

    def _filter(self, name, batch, unique: dict[tuple[int, int, ToolCall], list[Candidate]], future, documents,
                run: _ToolRun) -> None:
        """Stage 3's results recorded on the candidates, then stage 4 on the calls that returned one."""
        cfg, tool = self.cfg, self.tools[name]
        executed = []
        for ((doc, i, call), twins), outcome in zip(unique.items(), future.result()):
            result = clean_result(outcome.text)
            status = CallStatus.OK if outcome.status == CallStatus.CACHED else outcome.status  # same run or resumed
            for candidate in twins:
                candidate.result, candidate.status = result, str(status)
            if not result:
                twins[0].outcome = "empty_result"
                continue
            run.stats.executed += 1
            executed.append(ExecutedCall(batch[doc][0], batch[doc][1].x, i, call, result, twins))
        threshold = tool.sampling.filter_threshold if cfg.filter_threshold is None else cfg.filter_threshold
        settings = FilterSettings(threshold, cfg.filter_placement == "inline", cfg.result_check)
        texts = [doc["text"] for doc in documents]
        for doc, kept, candidate in filter_calls(self.scorer, tool, executed, texts, settings, run.stats):
            run.kept.setdefault(doc, []).append((kept, candidate))


@dataclass
class _ToolRun:
    """What one tool's pass over a shard's documents gathers."""

    stats: AnnotationStats
    kept: dict[int, list[tuple[KeptCall, Candidate]]] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    positions: list[dict] = field(default_factory=list)


@dataclass
class Annotation:
    """One shard's annotation: C* records, per-tool statistics, every sampled call, every position's p_i."""

    records: list[dict]
    stats: dict[str, AnnotationStats]
    candidates: list[Candidate]
    positions: list[dict]


def prompt_overrides(spec: str, tool_names: Iterable[str]) -> dict[str, str]:
    """"calculator=path,…" → {API name: the rendered few-shot prompt} from the user's own prompt files
    (a UsageError names a bad item or file)."""
    names = {name.lower(): name for name in tool_names}
    out = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, path = item.partition("=")
        if not sep or key.strip().lower() not in names:
            raise UsageError(f"prompts: {item!r} is not TOOL=FILE for one of the tools {sorted(names)}")
        try:
            out[names[key.strip().lower()]] = fill_template(read_prompt_file(path.strip()), text=SENTINEL)
        except ValueError as e:
            raise UsageError(str(e)) from None
    return out


def call_head(tool: Tool) -> str:
    """What every call of this tool begins with after the "[": its name and "(" (and the quote)."""
    return f"{tool.name}(" + ('"' if tool.quoted_input else "")


def _show(bar: tqdm, stage: str, stats: AnnotationStats) -> None:
    bar.set_postfix_str(f"{stage}; positions {stats.positions}, calls {stats.calls_sampled}, "
                        f"executed {stats.executed}, kept {stats.kept['tool']}")
