"""The whole annotation on the embedded default model: resumable byte for byte, mesh-independent. Its
layers are scanned, as on TPUs and GPUs (and the eight-device mesh is such a host's): the annotation does
not depend on how the layers are laid out, and scanned layers compile about twice as fast on the CPU
(the unrolled ones are annotated end to end in test_annotate_multihost.py)."""

import json
from collections import Counter
from pathlib import Path

import jax
import pytest

from jtoolformer.annotate.dataset import open_c_star
from jtoolformer.annotate.pipeline import AnnotateConfig, Annotator
from jtoolformer.annotate.shards import run_annotation
from jtoolformer.data.corpus import DEMO_CORPUS
from jtoolformer.data.documents import read_jsonl
from jtoolformer.lm import LM
from jtoolformer.models import param_shardings
from jtoolformer.sharding import make_mesh
from jtoolformer.tools.registry import make_tools

CFG = AnnotateConfig(shard_size=2, positions_per_doc=2, calls_per_position=2, max_call_tokens=16, filter_threshold=0.0)


@pytest.fixture(scope="module")
def setup(smollm_scanned):
    lm = smollm_scanned
    docs = [d for d in read_jsonl(Path(DEMO_CORPUS)) if d["id"].startswith("calc-")][:4]
    docs.insert(1, {"id": "empty", "text": "   "})
    return lm, docs, Annotator(lm, make_tools("calculator"), CFG)


def outputs(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((out / "shards").iterdir())} | {"stats": (out / "stats.json").read_text()}


class Killed(Exception):
    pass


@pytest.mark.slow
def test_killed_run_resumes_to_the_unbroken_output(setup, tmp_path):
    lm, docs, annotator = setup
    whole = run_annotation(annotator, docs, tmp_path / "whole", progress=False)
    assert whole["_c_star_examples"] >= 1, "the test needs at least one kept call to mean anything"
    stats = whole["Calculator"]
    assert stats["documents"] == 5 and stats["skipped"]["empty"] == 1
    assert stats["calls_sampled"] == stats["positions"] * 2 >= stats["well_formed"] >= stats["executed"]

    def kill(shard):
        if shard == 1:
            raise Killed

    with pytest.raises(Killed):
        run_annotation(annotator, docs, tmp_path / "broken", progress=False, after_shard=kill)
    assert not (tmp_path / "broken" / "stats.json").exists()
    run_annotation(annotator, docs, tmp_path / "broken", progress=False)
    assert outputs(tmp_path / "broken") == outputs(tmp_path / "whole")

    c_star = open_c_star(tmp_path / "whole" / "tfds")
    assert len(c_star) == whole["_c_star_examples"]
    record = c_star[0]
    calls = json.loads(record["calls"])
    assert all(c["call"] in record["text"].decode() for c in calls)
    assert all(c["loss_minus"] - c["loss_plus"] >= 0.0 for c in calls)

    # the candidates file accounts for every sampled call, agreeing with the statistics and with C*
    rows = [json.loads(line) for line in (tmp_path / "whole" / "candidates.jsonl").read_text().splitlines()]
    assert len(rows) == stats["calls_sampled"]
    assert sum(r["parse"] == "ok" for r in rows) == stats["well_formed"]
    outcomes = Counter(r["outcome"] for r in rows)
    assert outcomes["kept"] + outcomes["lost_to_better"] + outcomes["leak"] == stats["kept"]["tool"]
    assert outcomes["kept"] == sum(len(json.loads(r["calls"])) for r in c_star)
    for r in rows:
        scored = r["gain"] is not None
        assert scored == (r["outcome"] in ("kept", "below_threshold", "lost_to_better", "leak"))
        if scored:
            assert r["gain"] == pytest.approx(min(r["loss_minus_empty"], r["loss_minus_call"]) - r["loss_plus"])
            assert (r["gain"] >= CFG.filter_threshold) == (r["outcome"] != "below_threshold")
    positions = [json.loads(line) for line in (tmp_path / "whole" / "positions.jsonl").read_text().splitlines()]
    assert sum(len(p["scores"]) for p in positions) >= stats["positions"]


@pytest.mark.slow
def test_eight_devices_give_the_same_c_star(setup, tmp_path):
    lm, docs, annotator = setup
    run_annotation(annotator, docs[:3], tmp_path / "one", progress=False)
    mesh = make_mesh(4, 1, 2)
    sharded = LM(lm.config, jax.device_put(lm.params, param_shardings(lm.config, mesh)), lm.tokenizer, mesh)
    run_annotation(Annotator(sharded, make_tools("calculator"), CFG), docs[:3], tmp_path / "eight", progress=False)
    one, eight = outputs(tmp_path / "one"), outputs(tmp_path / "eight")
    assert one.keys() == eight.keys()
    for name in one:
        if name.endswith(".candidates.jsonl"):
            fields = lambda c: (c["id"], c["i"], c["sample"])  # noqa: E731 (sampled texts may differ in the last ulp)
            assert [fields(json.loads(line)) for line in one[name].splitlines()] == \
                [fields(json.loads(line)) for line in eight[name].splitlines()]
        elif name.endswith(".jsonl") and name[:6].isdigit() and name.count(".") == 1:
            a = [json.loads(line) for line in one[name].splitlines()]
            b = [json.loads(line) for line in eight[name].splitlines()]
            assert [r["text"] for r in a] == [r["text"] for r in b]
            for ra, rb in zip(a, b):
                for ca, cb in zip(ra["calls"], rb["calls"]):
                    assert ca["loss_plus"] == pytest.approx(cb["loss_plus"], abs=1e-4)


def test_changed_settings_are_refused(setup, tmp_path):
    lm, docs, annotator = setup
    (tmp_path / "settings.json").write_text("{}")
    with pytest.raises(ValueError, match="other settings"):
        run_annotation(annotator, docs, tmp_path, progress=False)
