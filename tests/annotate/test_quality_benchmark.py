"""scripts/bench_annotation_quality.py's figures on a hand-made GSM8K problem: gold positions from the
marks, precision, result correctness, recall and the stage where each gold call was lost."""

import importlib.util
from pathlib import Path

import pytest

from jtoolformer.data.gsm8k import problem_document

REPO = Path(__file__).resolve().parents[2]
PROBLEM = {"question": "A box holds 12 eggs. How many eggs are in 3 boxes and 2 more boxes?",
           "answer": "3 boxes hold 3 * 12 = <<3*12=36>>36 eggs.\n2 boxes hold 2 * 12 = $<<2*12=24>>24.\n"
                     "Together 36 + 24 = <<36+24=60>>60 eggs.\n#### 60"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_annotation_quality",
                                                  REPO / "scripts" / "bench_annotation_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gold_calls_are_where_the_marks_were():
    doc = problem_document(PROBLEM, "p1")
    text = doc["text"]
    assert "<<" not in text and "####" not in text
    assert [(text[g["position"]:g["position"] + 2], g["result"]) for g in doc["gold_calls"]] == \
        [("36", "36"), ("24", "24"), ("60", "60")]
    assert text[doc["gold_calls"][1]["position"] - 1] == "$"


def test_scores_and_losses_by_stage(bench):
    doc = problem_document(PROBLEM, "p1")
    text = doc["text"]
    g36, g24, g60 = (g["position"] for g in doc["gold_calls"])
    kept = [{"char_position": g36 - 1, "result": "36"},  # before the space: the same place
            {"char_position": text.index("12 eggs"), "result": "12"}]  # not a gold position
    records = [{"id": "p1", "calls": kept, "text": "annotated"}]

    def candidate(pos, result, outcome, gain=None, parse="ok"):
        return {"id": "p1", "char_position": pos, "result": result, "outcome": outcome, "parse": parse, "gain": gain}

    candidates = [candidate(g36 - 1, "36", "kept", 0.9), candidate(text.index("12 eggs"), "12", "kept", 0.6),
                  candidate(g24 - 1, "24", "below_threshold", 0.2),  # "$" skipped: stage 4 lost it
                  candidate(g24, "24", "duplicate"),
                  candidate(g60, "61", "below_threshold", 1.5)]  # only a wrong result sampled: stage 2
    ranked = [[g36, 0.9], [text.index("12 eggs"), 0.8], [g24 - 1, 0.5], [g60, 0.1], [0, 0.05]]
    result = bench.score([doc], records, candidates, [{"id": "p1", "scores": ranked}], {"kept": {}}, k=4)
    assert result["gold_calls"] == 3 and result["kept_calls"] == 2
    assert result["precision"] == 0.5 and result["result_correctness"] == 0.5
    assert result["recall"] == pytest.approx(1 / 3)
    assert result["gold_ranks"] == [1, 3, 4]
    assert result["best_gain_of_a_correct_call_at_gold"] == [0.2, 0.9]
    assert result["gold_lost_at"] == {"recovered": 1, "stage4_filtered_or_merged_out": 1,
                                      "stage2_no_correct_call_sampled": 1}
    assert bench.score([doc], records, candidates, [{"id": "p1", "scores": ranked}], {"kept": {}},
                       k=2)["gold_lost_at"]["stage1_rank_above_k"] == 2


def test_refiltering_a_run_keeps_what_the_annotator_would_keep(bench):
    doc = problem_document(PROBLEM, "p1")
    text = doc["text"]
    g36, g24, _ = (g["position"] for g in doc["gold_calls"])

    def candidate(pos, call_input, result, gain):
        return {"id": "p1", "tool": "Calculator", "i": 0, "char_position": pos, "input": call_input,
                "result": result, "loss_plus": 1.0, "gain": gain}

    candidates = [candidate(g36, "3 * 12", "36", 0.3), candidate(g36, "12 - 3", "9", 0.6),  # same position
                  candidate(g24, "2 * 12", "24", 0.1), candidate(text.index("3 boxes hold"), "3", "3", 0.9),
                  candidate(g24, "2 * 99", "198", None)]  # never scored

    def kept(threshold, check):
        return [(c["char_position"], c["result"])
                for r in bench.refiltered_records([doc], candidates, threshold, check) for c in r["calls"]]

    assert kept(0.5, "none") == [(text.index("3 boxes hold"), "3"), (g36, "9")]  # the best gain per position wins
    assert kept(0.0, "stated_next") == [(g36, "36"), (g24, "24")]  # wrong and no-op calls are never kept
    assert kept(0.2, "stated_next") == [(g36, "36")]
