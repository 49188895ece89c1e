"""The candidates file: why each sampled call was kept or dropped.

`annotate` writes `candidates.jsonl` beside C*, one JSON object per sampled call:
  id, tool          the document and the tool's API name
  i, char_position  the position (before token x_i; that many characters of the text precede it)
  p, rank           p_i = p(<API> | P(x), x_<i) and its rank among the document's allowed positions (1 = best)
  sample, text      the sample's index at this position and what the model wrote after the API start
  parse             "ok", "malformed" (not `Tool(input)` for this tool, or never closed) or "empty_input"
  input, result, status   the parsed input, the executor's result and its status ("" where not executed)
  loss_plus, loss_minus_empty, loss_minus_call, gain
                    L⁺ = L_i(e(c, r)), L_i(ε), L_i(e(c, ε)) and L⁻ − L⁺ (null where not scored)
  outcome           kept | malformed | empty_input | empty_result | below_threshold | leak | lost_to_better |
                    duplicate (the same call sampled again at this position; scored once) | unaligned |
                    result_not_stated (with result_check: stated_next; not scored)

and `positions.jsonl`, one object per (document, tool): `scores`, the [char_position, p_i] of every
allowed position. `jtoolformer candidates RUN` summarises both; in pandas:
`pd.read_json("RUN/candidates.jsonl", lines=True).groupby(["tool", "outcome"]).size()`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from jtoolformer.errors import UsageError

CANDIDATES_FILE = "candidates.jsonl"
POSITIONS_FILE = "positions.jsonl"
OUTCOMES = ("kept", "malformed", "empty_input", "empty_result", "below_threshold", "leak", "lost_to_better", "duplicate",
            "unaligned")


@dataclass
class Candidate:
    """One sampled call and what became of it; filled in stage by stage."""

    id: str
    tool: str
    i: int
    char_position: int
    p: float
    rank: int
    sample: int
    text: str
    parse: str = "malformed"
    input: str = ""
    result: str = ""
    status: str = ""
    loss_plus: float | None = None
    loss_minus_empty: float | None = None
    loss_minus_call: float | None = None
    gain: float | None = None
    outcome: str = "malformed"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def concatenate(parts: Iterable[Path], out: Path) -> None:
    """One file from the shards' parts, in shard order (written whole, then moved into place)."""
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for part in parts:
            if part.exists():
                f.write(part.read_text(encoding="utf-8"))
    tmp.replace(out)


def summary(run_dir: Path, outcome: str | None = None, doc: str | None = None, limit: int = 20) -> str:
    """A readable view of a run's candidates file: counts by tool and outcome, then the calls that
    match (best gain first)."""
    path = Path(run_dir) / CANDIDATES_FILE
    if not path.exists():
        raise UsageError(f"{path} does not exist: run `jtoolformer annotate` with write_candidates=true")
    rows = [r for r in read_jsonl(path) if (doc is None or r["id"] == doc)]
    counts = Counter((r["tool"], r["outcome"]) for r in rows)
    lines = [f"{len(rows)} sampled calls in {path}"]
    for tool in sorted({t for t, _ in counts}):
        lines.append(f"  {tool}: " + ", ".join(f"{o} {counts[tool, o]}" for o in OUTCOMES if counts[tool, o]))
    shown = [r for r in rows if outcome is None or r["outcome"] == outcome]
    shown.sort(key=lambda r: -(r["gain"] if r["gain"] is not None else float("-inf")))
    for r in shown[:limit]:
        gain = "" if r["gain"] is None else f" gain {r['gain']:+.3f} (L+ {r['loss_plus']:.3f}, " \
            f"L-(eps) {r['loss_minus_empty']:.3f}, L-(call) {r['loss_minus_call']:.3f})"
        lines.append(f"[{r['outcome']}] {r['id']} @{r['char_position']} p={r['p']:.4f} rank {r['rank']}: "
                     f"{r['text']!r} -> {r['result']!r}{gain}")
    if len(shown) > limit:
        lines.append(f"… {len(shown) - limit} more (--limit)")
    return "\n".join(lines)
