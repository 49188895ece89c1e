"""Annotation quality against human-placed calls: GSM8K solutions, their `<<expr=result>>` marks
removed, annotated with the Calculator; the marks are the gold calls.

For each setting (k, m, call sites, prompt) it reports precision (kept calls at a gold position),
result correctness (kept calls whose result equals the gold result), recall (gold positions
recovered), the Table-2 counts, and for every gold position its rank among its document's positions
and the stage where it was lost: not a candidate position, stage 1 (rank > k), stage 2 (no sampled call
there gave the gold result), stage 4 (the filter or the merge dropped it), or recovered.

    python scripts/bench_annotation_quality.py --data ../shared/data/gsm8k/train.jsonl --start 5000 \\
        --docs 40 --settings 20,10,numbers,inline --out scripts/results/bench_annotation_quality.json

A setting is "k,m,call_sites,filter_placement[,prompt file]". Results are written after every
setting; with --candidates-dir, each setting's candidates file too (see annotate/candidates_file.py).

With --from-run and --sweep, the run's scored candidates are filtered again at each τ_f, with and
without `result_check: stated_next`, as the annotator would have (no model needed):

    python scripts/bench_annotation_quality.py --from-run runs/experiment_math/annotate \
        --data runs/experiment_math/corpus.jsonl --sweep 0.5,0.2,0.1,0,-0.1 --out …
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

from jtoolformer.annotate.candidates_file import CANDIDATES_FILE, POSITIONS_FILE, read_jsonl
from jtoolformer.annotate.filter import same_number, states_result
from jtoolformer.annotate.merge import KeptCall, choose_calls, insert_calls
from jtoolformer.annotate.pipeline import AnnotateConfig, Annotator
from jtoolformer.data.gsm8k import read_problems
from jtoolformer.lm import DEFAULT_MODEL, load_model
from jtoolformer.tools.registry import make_tools

_LEADING = re.compile(r"[\s$€£(]*")


def site(text: str, position: int) -> int:
    """A call position moved past the spaces, currency signs and parentheses before what follows, so
    that "= [call] 24", "=[call] 24" and "= $[call]24" are one place."""
    return _LEADING.match(text, position).end()


def evaluate_setting(annotator: Annotator, docs: list[dict], k: int, candidates: Path | None) -> dict:
    annotation = annotator.annotate(docs, progress=True)
    if candidates is not None:
        candidates.write_text("".join(c.to_json() + "\n" for c in annotation.candidates))
    return score(docs, annotation.records, [vars(c) for c in annotation.candidates], annotation.positions,
                 annotation.stats["Calculator"].to_dict(), k)


def load_run(run: Path, corpus: Path) -> tuple[list[dict], list[dict], list[dict], list[dict], dict]:
    """A finished `jtoolformer annotate` run over a corpus with gold calls: the documents, C*'s records,
    the candidates, the positions and the Calculator's Table-2 counts."""
    records = [r for shard in sorted((run / "shards").glob("[0-9]*[0-9].jsonl")) for r in read_jsonl(shard)]
    stats = json.loads((run / "stats.json").read_text())["Calculator"]
    return (list(read_jsonl(corpus)), records, list(read_jsonl(run / CANDIDATES_FILE)),
            list(read_jsonl(run / POSITIONS_FILE)), stats)


def score_run(run: Path, corpus: Path, k: int) -> dict:
    """score() of a finished run."""
    return score(*load_run(run, corpus), k)


def refiltered_records(docs: list[dict], candidates: list[dict], threshold: float, result_check: str) -> list[dict]:
    """C*'s records had the run kept calls at `threshold` with `result_check`: from the scored candidates,
    merged as the annotator merges them (best gain per position, leaks dropped)."""
    texts = {d["id"]: d["text"] for d in docs}
    passing: dict[str, list[KeptCall]] = {}
    for c in candidates:
        if c["gain"] is None or c["gain"] < threshold:
            continue
        if result_check == "stated_next" and not states_result(c["input"], c["result"], texts[c["id"]],
                                                               c["char_position"]):
            continue
        passing.setdefault(c["id"], []).append(
            KeptCall(c["tool"], c["input"], c["result"], c["i"], c["char_position"], c["loss_plus"],
                     c["loss_plus"] + c["gain"]))
    records = []
    for doc in docs:
        calls, _ = choose_calls(passing.get(doc["id"], []), doc["text"])
        if calls:
            records.append({"id": doc["id"], "text": insert_calls(doc["text"], calls),
                            "calls": [call.record() for call in calls]})
    return records


def sweep_run(run: Path, corpus: Path, k: int, thresholds: list[float]) -> list[dict]:
    """score() of a finished run's candidates filtered again at each threshold, with and without the
    result check (only with it where the run itself checked: the others were never scored)."""
    docs, _, candidates, positions, stats = load_run(run, corpus)
    checked_in_run = any(c["outcome"] == "result_not_stated" for c in candidates)
    rows = []
    for result_check in ("stated_next",) if checked_in_run else ("none", "stated_next"):
        for threshold in thresholds:
            figures = score(docs, refiltered_records(docs, candidates, threshold, result_check), candidates,
                            positions, stats, k)
            rows.append({"filter_threshold": threshold, "result_check": result_check,
                         **{name: figures[name] for name in SWEEP_FIGURES}})
    return rows


SWEEP_FIGURES = ("kept_calls", "precision", "result_correctness", "recall", "recall_with_gold_result", "gold_lost_at")


def gold_outcome(rank: int | None, k: int, kept: bool, sampled_right: bool) -> str:
    """Where a gold call was recovered or lost, in stage order."""
    if kept:
        return "recovered"
    if rank is None:
        return "not_a_candidate_position"
    if rank > k:
        return "stage1_rank_above_k"
    return "stage4_filtered_or_merged_out" if sampled_right else "stage2_no_correct_call_sampled"


def position_ranks(text: str, scores: list[list[float]]) -> dict[int, int]:
    """Each site's best rank among the document's positions by p_i (1 = best)."""
    ranks: dict[int, int] = {}
    for rank, (char, _) in enumerate(sorted(scores, key=lambda cp: -cp[1]), 1):
        ranks.setdefault(site(text, char), rank)
    return ranks


def score(docs: list[dict], records: list[dict], candidates: list[dict], positions: list[dict], stats: dict,
          k: int) -> dict:
    scores = {p["id"]: p["scores"] for p in positions}
    by_doc_candidates: dict[str, list[dict]] = {}
    for c in candidates:
        by_doc_candidates.setdefault(c["id"], []).append(c)
    kept_by_doc = {r["id"]: r["calls"] for r in records}
    count = Counter()
    lost = Counter()
    ranks, best_gains = [], []
    for doc in docs:
        text = doc["text"]
        gold_sites = {site(text, g["position"]): g["result"] for g in doc["gold_calls"]}
        kept = [(site(text, c["char_position"]), c) for c in kept_by_doc.get(doc["id"], [])]
        kept_sites = dict(kept)
        count["kept"] += len(kept)
        for s, call in kept:
            count["kept_at_gold"] += s in gold_sites
            count["kept_correct"] += s in gold_sites and same_number(call["result"], gold_sites[s])
        rank_of = position_ranks(text, scores.get(doc["id"], []))
        for s, result in gold_sites.items():
            ranks.append(rank_of.get(s))
            right = [c for c in by_doc_candidates.get(doc["id"], []) if site(text, c["char_position"]) == s
                     and c["parse"] == "ok" and same_number(c["result"], result)]
            best_gains += [max(c["gain"] for c in right if c["gain"] is not None)] if any(
                c["gain"] is not None for c in right) else []
            lost[gold_outcome(ranks[-1], k, s in kept_sites, bool(right))] += 1
            count["recovered_correct"] += s in kept_sites and same_number(kept_sites[s]["result"], result)
    gold_total, kept_total = len(ranks), count["kept"]

    def share(n: int, of: int) -> float | None:
        return n / of if of else None

    return {
        "documents": len(docs), "gold_calls": gold_total, "kept_calls": kept_total,
        "precision": share(count["kept_at_gold"], kept_total),
        "result_correctness": share(count["kept_correct"], kept_total),
        "result_correctness_at_gold": share(count["kept_correct"], count["kept_at_gold"]),
        "recall": share(lost["recovered"], gold_total),
        "recall_with_gold_result": share(count["recovered_correct"], gold_total),
        "gold_lost_at": dict(lost),
        "gold_rank_within_k": sum(1 for r in ranks if r is not None and r <= k),
        "gold_ranks": ranks,
        "best_gain_of_a_correct_call_at_gold": sorted(best_gains),  # the filter keeps gains ≥ τ_f
        "table2": stats,
        "candidate_outcomes": dict(Counter(c["outcome"] for c in candidates)),
        "examples": [{"id": r["id"], "annotated": r["text"]} for r in records if r["calls"]][:12],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="GSM8K-format JSONL (question, answer with <<…>> marks)")
    parser.add_argument("--from-run", type=Path, default=None,
                        help="score a finished annotate run instead (its --corpus given as --data, as written by "
                             "jtoolformer.data.gsm8k: documents with gold_calls)")
    parser.add_argument("--start", type=int, default=0, help="skip this many problems")
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--settings", nargs="+", default=["20,10,word_boundary,prefix", "20,10,numbers,inline"])
    parser.add_argument("--candidates-dir", type=Path, default=None)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch-docs", type=int, default=4)
    parser.add_argument("--max-decode-rows", type=int, default=256)
    parser.add_argument("--sweep", default=None, metavar="TAU,…",
                        help="with --from-run: filter the run's candidates again at these τ_f")
    parser.add_argument("--out", default="scripts/results/bench_annotation_quality.json")
    args = parser.parse_args()

    if args.from_run is not None and args.sweep:
        k = int(args.settings[0].split(",")[0])
        rows = sweep_run(args.from_run, Path(args.data), k, [float(t) for t in args.sweep.split(",")])
        Path(args.out).write_text(json.dumps({"run": str(args.from_run), "k": k, "sweep": rows}, indent=1))
        for r in rows:
            print(f"τ_f {r['filter_threshold']:>5} {r['result_check']:<11}: kept {r['kept_calls']:4}, "
                  f"recall {r['recall']:.2f} ({r['recall_with_gold_result']:.2f} with the gold result), "
                  f"correct {r['result_correctness']}")
        return
    if args.from_run is not None:
        k = int(args.settings[0].split(",")[0])
        result = score_run(args.from_run, Path(args.data), k) | {"run": str(args.from_run), "k": k}
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"recall {result['recall']}, precision {result['precision']}, correct {result['result_correctness']}, "
              f"lost at {result['gold_lost_at']}")
        return
    docs = list(read_problems(args.data, start=args.start, limit=args.docs))
    lm = load_model(args.model)
    tools = make_tools("calculator")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {"data": str(args.data), "start": args.start, "model": args.model, "commit": commit,
              "paper_settings": {"tau_s": 0.0, "tau_f": 0.5}, "results": []}
    for setting in args.settings:
        k, m, call_sites, placement, *prompt = setting.split(",")
        cfg = AnnotateConfig(tools="calculator", positions_per_doc=int(k), calls_per_position=int(m),
                             call_sites=call_sites, filter_placement=placement, prompts=f"calculator={prompt[0]}" if prompt else "",
                             batch_docs=args.batch_docs, max_decode_rows=args.max_decode_rows)
        started = time.perf_counter()
        candidates = None
        if args.candidates_dir is not None:
            args.candidates_dir.mkdir(parents=True, exist_ok=True)
            candidates = args.candidates_dir / (setting.replace(",", "_").replace("/", "_") + ".jsonl")
        result = evaluate_setting(Annotator(lm, tools, cfg), docs, int(k), candidates)
        result |= {"k": int(k), "m": int(m), "call_sites": call_sites, "filter_placement": placement, "prompt": prompt[0] if prompt else "shipped",
                   "seconds": time.perf_counter() - started}
        report["results"].append(result)
        out.write_text(json.dumps(report, indent=1))
        print(f"{setting}: recall {result['recall']}, precision {result['precision']}, "
              f"correct {result['result_correctness']}, lost at {result['gold_lost_at']}", flush=True)


if __name__ == "__main__":
    main()
