"""Annotating a batch of documents: per tool, stage 1 (positions) and 2 (calls) on the device, stage 3
(execution) on the host in the background, stage 4 (the filter); then the tools' kept calls merged.
Resumable runs over a whole corpus are in shards.py."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import jax
from tqdm import tqdm

from jtoolformer.annotate.call_sites import CALL_SITE_RULES, allowed_positions, char_position, token_starts
from jtoolformer.annotate.candidates import SENTINEL, CandidateSampler, Document
from jtoolformer.annotate.candidates_file import Candidate
from jtoolformer.annotate.merge import KeptCall, choose_calls, insert_calls, spaced_call, states_result
from jtoolformer.annotate.scoring import Scorer, ScoreRequest
from jtoolformer.config import Checked, setting
from jtoolformer.errors import UsageError
from jtoolformer.generate.sampling import Sampling
from jtoolformer.tools.base import Tool, ToolContext, read_prompt_file
from jtoolformer.tools.calls import ARROWS, CALL_END, ToolCall, clean_result, format_call, parse_partial_call
from jtoolformer.tools.executor import CallStatus, ToolExecutor, ToolRequest
from jtoolformer.tools.text import fill_template

REPORT_THRESHOLDS = (0.5, 1.0, 2.0)


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
    max_decode_rows: int = setting(256, ge=1)  # calls decoded together in stage 2 (bounds memory at any k, m)
    max_position_tokens: int = setting(2048, ge=1)  # padded tokens per stage-1 forward (bounds it at any batch_docs)
    max_prefix_tokens: int = setting(8192, ge=1)  # stage 2: head + tail tokens of the documents decoded together
    call_sites: str = setting("word_boundary", choices=CALL_SITE_RULES)  # stage-1 positions (call_sites.py)
    # stage 4: "prefix" (the paper) or "inline": z scored where it is inserted, against the call without result
    filter_placement: str = setting("prefix", choices=("prefix", "inline"))
    call_head: str = setting("free", choices=("free", "forced"))
    # stage 4: "none" (the paper) or "stated_next": a call is scored only when it computes something and
    # the text's next number is its result (merge.states_result)
    result_check: str = setting("none", choices=("none", "stated_next"))  # stage 2: "forced" feeds "Tool(" after the API start
    prompts: str = ""  # the user's own few-shot prompts: "calculator=my_prompt.txt,qa=…"
    write_candidates: bool = True  # candidates.jsonl and positions.jsonl beside C* (candidates_file.py)
    index: str | None = None  # WikiSearch and QA passages: an index directory (`index build`); None: the demo set
    mt_model: str | None = None  # MT: a seq2seq checkpoint directory (e.g. NLLB); None: the LM prompted to translate

    def fingerprint(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class AnnotationStats:
    """Table 2 of the paper, per tool."""

    documents: int = 0
    prefiltered: int = 0  # passed the tool's pre-filter
    skipped: Counter = field(default_factory=Counter)
    positions: int = 0
    calls_sampled: int = 0
    well_formed: int = 0
    executed: int = 0  # returned a non-empty result
    kept: Counter = field(default_factory=Counter)  # by τ_f (as str), plus "tool" for the tool's own τ_f

    def add(self, other: "AnnotationStats") -> None:
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, a + b)

    def to_dict(self) -> dict:
        return {f.name: dict(getattr(self, f.name)) if isinstance(getattr(self, f.name), Counter)
                else getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "AnnotationStats":
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
        prompts = prompt_overrides(cfg.prompts, tools)
        self.samplers = {name: CandidateSampler(lm, prompts.get(name) or tool.render_prompt(SENTINEL),
                                                max_call_tokens=cfg.max_call_tokens, sampling=sampling,
                                                call_head=call_head(tool) if cfg.call_head == "forced" else "",
                                                max_position_tokens=cfg.max_position_tokens)
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
        records = []
        for k, doc in enumerate(documents):
            by_call = {id(call): candidate for call, candidate in found.get(k, [])}
            calls, leaked = choose_calls([call for call, _ in found.get(k, [])], doc["text"])
            for call in leaked:
                stats[call.tool].skipped["leaking_call"] += 1
                by_call[id(call)].outcome = "leak"
            chosen = {id(call) for call in calls}
            for call, candidate in found.get(k, []):
                if candidate.outcome == "kept" and id(call) not in chosen:
                    candidate.outcome = "lost_to_better"
            if calls:
                records.append({"id": doc["id"], "text": insert_calls(doc["text"], calls), "original": doc["text"],
                                "url": doc.get("url", ""), "date": doc.get("date", ""),
                                "calls": [c.record() for c in calls]})
        return Annotation(records, stats, candidates, positions)

    def _prepare(self, name: str, documents: Sequence[dict], stats: AnnotationStats):
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
        batches = [ready[s : s + self.cfg.batch_docs] for s in range(0, len(ready), self.cfg.batch_docs)]
        pending = None
        bar = tqdm(total=len(batches), desc=f"annotate {name}", unit="batch", disable=not progress, leave=False)
        for batch in [*batches, None]:
            if batch:
                _show(bar, "sampling (previous batch executing)" if pending else "sampling", run.stats)
            started = self._sample(name, batch, documents, run) if batch else None
            if pending is not None:
                _show(bar, "filtering", run.stats)
                self._filter(name, *pending, documents, run)
                bar.update()
            pending = started
        _show(bar, "done", run.stats)
        bar.close()

    def _sample(self, name: str, batch, documents, run: _ToolRun):
        """Stages 1–2 on the device, then stage 3 submitted to the executor in the background."""
        tool, sampler, stats, tok = self.tools[name], self.samplers[name], run.stats, self.lm.tokenizer
        docs: list[Document] = [d for _, d, _ in batch]
        texts = [documents[k]["text"] for k, _, _ in batch]
        ids = [str(documents[k]["id"]) for k, _, _ in batch]
        starts = [token_starts(tok, texts[r], d.x) for r, d in enumerate(docs)]
        scores, positions, state = sampler.positions(
            docs, tool.sampling.position_threshold, self.cfg.positions_per_doc or tool.sampling.positions_per_doc,
            [allowed_positions(self.cfg.call_sites, texts[r], starts[r]) for r in range(len(docs))])
        ranks = [{i: rank for rank, i in enumerate(sorted(s, key=lambda i: (-s[i], i)), 1)} for s in scores]
        run.positions += [{"id": ids[r], "tool": tool.name, "scores": [[starts[r][i], p] for i, p in sorted(s.items())]}
                          for r, s in enumerate(scores)]
        stats.positions += len(positions)
        keys = [self._doc_key(documents[k]["id"], name) for k, _, _ in batch]
        m = self.cfg.calls_per_position or tool.sampling.calls_per_position
        sampled = sampler.sample_calls(docs, positions, state, m, keys, max_rows=self.cfg.max_decode_rows,
                                       max_prefix_tokens=self.cfg.max_prefix_tokens)
        stats.calls_sampled += len(sampled)
        p_at = {(pos.doc, pos.i): pos.p for pos in positions}
        unique: dict[tuple[int, int, ToolCall], list[Candidate]] = {}
        for s in sampled:
            candidate = Candidate(ids[s.doc], tool.name, s.i, starts[s.doc][s.i], p_at[s.doc, s.i],
                                  ranks[s.doc][s.i], s.sample, s.text)
            run.candidates.append(candidate)
            call = parse_partial_call(_cut_call(s.text), [tool.name])
            if call is None:
                continue
            candidate.input = call.input
            if tool.takes_input and not call.input.strip():
                candidate.parse = candidate.outcome = "empty_input"
                continue
            stats.well_formed += 1
            candidate.parse = "ok"
            twins = unique.setdefault((s.doc, s.i, call), [])
            if twins:
                candidate.outcome = "duplicate"
            twins.append(candidate)
        requests = [ToolRequest(call, batch[doc][2]) for doc, _, call in unique]
        future = self._pool.submit(self.executor.run, requests)
        return batch, unique, future

    def _filter(self, name, batch, unique, future, documents, run: _ToolRun) -> None:
        """Stage 4: keep a call when min(L(ε), L(e(c, ε))) − L(e(c, r)) ≥ τ_f (the paper's prefix placement),
        or L(e(c, ε)) − L(e(c, r)) ≥ τ_f with both calls inline (filter_placement=inline)."""
        tool, tok, stats = self.tools[name], self.lm.tokenizer, run.stats
        inline = self.cfg.filter_placement == "inline"
        requests: dict[ScoreRequest, None] = {}
        scored = []
        for ((doc, i, call), twins), outcome in zip(unique.items(), future.result()):
            result = clean_result(outcome.text)
            status = CallStatus.OK if outcome.status == CallStatus.CACHED else outcome.status  # same run or resumed
            for candidate in twins:
                candidate.result, candidate.status = result, str(status)
            if not result:
                twins[0].outcome = "empty_result"
                continue
            stats.executed += 1
            x = batch[doc][1].x
            char = char_position(tok, x, i)
            if char is None:
                twins[0].outcome = "unaligned"
                stats.skipped["unaligned_position"] += 1
                continue

            if self.cfg.result_check == "stated_next" and not states_result(
                call.input, result, documents[batch[doc][0]]["text"], char
            ):
                twins[0].outcome = "result_not_stated"
                stats.skipped["result_not_stated"] += 1
                continue

            def z(r: str) -> tuple[int, ...]:
                text = format_call(call, r, quoted=tool.quoted_input)
                return tuple(tok.encode(spaced_call(text, documents[batch[doc][0]]["text"], char) if inline else text))

            with_result, without = ScoreRequest(z(result), x, i, inline), ScoreRequest(z(""), x, i, inline)
            empty = ScoreRequest((), x, i)
            requests.update(dict.fromkeys([with_result, without, empty]))
            scored.append((doc, i, char, call, result, with_result, without, empty, twins))
        if not scored:
            return
        order = list(requests)
        losses = dict(zip(order, self.scorer(order)))
        threshold = tool.sampling.filter_threshold if self.cfg.filter_threshold is None else self.cfg.filter_threshold
        for doc, i, char, call, result, plus, minus_call, minus_empty, twins in scored:
            first = twins[0]
            first.loss_plus, first.loss_minus_call = float(losses[plus]), float(losses[minus_call])
            first.loss_minus_empty = float(losses[minus_empty])
            loss_minus = first.loss_minus_call if inline else min(first.loss_minus_call, first.loss_minus_empty)
            first.gain = gain = loss_minus - first.loss_plus
            for reported in REPORT_THRESHOLDS:
                stats.kept[str(reported)] += gain >= reported
            if gain < threshold:
                first.outcome = "below_threshold"
                continue
            first.outcome = "kept"
            stats.kept["tool"] += 1
            kept = KeptCall(tool.name, call.input, result, i, char, first.loss_plus, loss_minus, tool.quoted_input)
            run.kept.setdefault(batch[doc][0], []).append((kept, first))


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
