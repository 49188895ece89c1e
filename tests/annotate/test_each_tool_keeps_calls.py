"""Every tool's calls can reach C*: the embedded model, each tool's shipped prompt and backend, and a
filter threshold every call passes, so what is tested is that nothing on the way drops a tool's
calls (a Calendar call, written `[Calendar()]`, has an empty input and used to be dropped). The model's
layers are scanned (see test_annotation_run.py): each tool's prompt compiles its own pipeline."""

import pytest

from jtoolformer.annotate.pipeline import AnnotateConfig, Annotator
from jtoolformer.tools.registry import make_tools

DOCUMENTS = {
    "calculator": {"id": "calc", "text": "The school ordered 18 boxes of 10 pencils, so it got 180 pencils in all."},
    "calendar": {"id": "cal", "text": "The shops close early today because it is Friday, the last day of January.",
                 "date": "2023-01-27"},
    "wikisearch": {"id": "wiki", "text": "The Eiffel Tower is a wrought-iron tower in Paris, the capital of France."},
    "qa": {"id": "qa", "text": "Paris is the capital and largest city of France."},
    "mt": {"id": "mt", "text": "When we drove into the country last summer, the large sign at the border said "
                               "\"Bienvenue en France, le pays du fromage et du vin\", which my father read aloud to "
                               "all of us in the back seat: it means welcome to France, the country of cheese and wine."},
}


@pytest.mark.slow
@pytest.mark.parametrize("tool", sorted(DOCUMENTS))
def test_calls_of_every_tool_can_be_kept(smollm_scanned, tool):
    lm = smollm_scanned
    tools = make_tools(tool, generator=lm)
    positions = 16 if tool == "mt" else 3  # MT calls before the foreign phrase copy it: leaks, dropped
    cfg = AnnotateConfig(tools=tool, positions_per_doc=positions, calls_per_position=2 if tool == "mt" else 4,
                         max_call_tokens=20, call_head="forced",
                         filter_threshold=-1e6, temperature=0.7, tool_timeout_s=0)  # LM-backed tools on a busy CPU
    annotation = Annotator(lm, tools, cfg).annotate([DOCUMENTS[tool]])
    (name,) = tools
    stats = annotation.stats[name]
    assert stats.well_formed > 0 and stats.kept["tool"] > 0, stats
    [record] = annotation.records
    assert {call["tool"] for call in record["calls"]} == {name}
    assert all(call["call"] in record["text"] and call["result"] for call in record["calls"])
    kept = [c for c in annotation.candidates if c.outcome == "kept"]
    assert kept and all(c.gain is not None and c.gain >= -1e6 and c.parse == "ok" for c in kept)
