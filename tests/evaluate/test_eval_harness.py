import json
import math
from pathlib import Path

import pytest
from eval_fakes import FakeCall, FakeGeneration, LookupGenerator, words_scorer

from jtoolformer.evaluate import evaluate, resolve_tasks
from jtoolformer.evaluate.tasks import DataSources, GenerationTask
from jtoolformer.tools.registry import TOOL_KEYS

TASKS = "lama_squad,lama_trex,asdiv,webqs,dateset,wikitext,ccnet"
LIMIT = 4


def lookup_generator(sources: DataSources) -> LookupGenerator:
    """Gold answers for every prompt; the first example of each task is answered without tools."""
    answers, known = {}, set()
    for task in resolve_tasks(TASKS):
        if isinstance(task, GenerationTask):
            examples = list(task.load(sources))[:LIMIT]
            answers.update({e.prompt: e.answers[0] for e in examples})
            known.add(examples[0].prompt)
    return LookupGenerator(answers, known)


@pytest.fixture
def run(sources: DataSources, tmp_path: Path):
    generator = lookup_generator(sources)
    out = tmp_path / "out"
    results = evaluate(
        generator,
        words_scorer,
        resolve_tasks(TASKS),
        ["disabled", "enabled"],
        LIMIT,
        out,
        data=sources,
        trigger_top_k=3,
        batch_size=3,
        run_info={"model": "lookup"},
    )
    return generator, results, out


def test_accuracies_and_tool_use(run) -> None:
    _, results, _ = run
    got = {
        (r.task, r.mode): (r.n, round(r.value, 4), round(r.call_share, 4), r.tool_calls)
        for r in results
    }
    assert got == {
        ("lama_squad", "disabled"): (2, 0.5, 0.0, {}),
        ("lama_squad", "enabled"): (2, 1.0, 0.5, {"qa": 1}),
        ("lama_trex", "disabled"): (3, 0.3333, 0.0, {}),
        ("lama_trex", "enabled"): (3, 1.0, 0.6667, {"qa": 2}),
        ("asdiv", "disabled"): (2, 0.5, 0.0, {}),
        ("asdiv", "enabled"): (2, 1.0, 0.5, {"qa": 1}),
        ("webqs", "disabled"): (3, 0.3333, 0.0, {}),
        ("webqs", "enabled"): (3, 1.0, 0.6667, {"wikisearch": 2}),  # no QA tool on QA sets
        ("dateset", "disabled"): (4, 0.25, 0.0, {}),
        ("dateset", "enabled"): (4, 1.0, 0.75, {"qa": 3}),
        ("wikitext", "disabled"): (2, round(math.exp(2), 4), 0.0, {}),
        ("ccnet", "disabled"): (3, round(math.exp(2), 4), 0.0, {}),
    }
    trex = next(r for r in results if (r.task, r.mode) == ("lama_trex", "enabled"))
    assert (trex.accuracy_with_call, trex.accuracy_without_call) == (1.0, 1.0)


def test_generator_requests(run, sources: DataSources) -> None:
    generator, _, _ = run
    for request in generator.requests:
        assert request["trigger_top_k"] == (3 if request["tools"] else None)
        assert len(request["prompts"]) <= 3  # batch size

    def tools_for(prompt_part: str) -> set[tuple[str, ...]]:
        return {r["tools"] for r in generator.requests if prompt_part in r["prompts"][0]}

    assert tools_for("factually correct") == {(), ("calculator", "calendar", "qa", "mt")}
    assert tools_for("fixture one's siblings") == {
        (),
        ("calculator", "calendar", "wikisearch", "mt"),
    }
    assert tools_for("apples") == {(), TOOL_KEYS}
    dateset = list(resolve_tasks("dateset")[0].load(sources))[:LIMIT]
    sent = [
        d
        for r in generator.requests
        if r["prompts"][0] == dateset[0].prompt
        for d in r["calendar_dates"]
    ]
    assert sent[:3] == [e.calendar_date for e in dateset[:3]]


def test_outputs(run) -> None:
    _, results, out = run
    payload = json.loads((out / "results.json").read_text())
    assert payload["run"] == {"model": "lookup", "trigger_top_k": 3, "limit": LIMIT}
    assert len(payload["results"]) == len(results) == 12
    table = (out / "results.md").read_text()
    assert (
        "| lama_squad | accuracy | 2 | 17.8 | 22.1 | 33.8 | 50.0 | 100.0 | 50.0% (qa 1) |" in table
    )
    assert (
        "| webqs | accuracy | 3 | 18.5 | 18.9 | 26.3 | 33.3 | 100.0 | 66.7% (wikisearch 2) |"
        in table
    )
    assert "| wikitext | perplexity | 2 | 9.90 | 10.30 | – | 7.39 | – | – |" in table
    png = (out / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    predictions = [
        json.loads(line)
        for line in (out / "predictions" / "asdiv.enabled.jsonl").read_text().splitlines()
    ]
    assert [p["correct"] for p in predictions] == [True, True]
    assert predictions[1]["calls"][0]["tool"] == "qa"


def test_a_call_to_a_forbidden_tool_is_an_error(sources: DataSources, tmp_path: Path) -> None:
    def searching_generator(prompts, *, tools, **_):
        return [FakeGeneration(" x", [FakeCall("wikisearch", "q", "r")]) for _ in prompts]

    with pytest.raises(
        ValueError, match=r"lama_squad \[enabled\] example fx0001_0: .*\['wikisearch'\]"
    ):
        evaluate(
            searching_generator,
            words_scorer,
            resolve_tasks("lama_squad"),
            ["enabled"],
            2,
            tmp_path,
            data=sources,
        )


def test_bad_modes_and_empty_tasks_are_errors(sources: DataSources, tmp_path: Path) -> None:
    generator = lookup_generator(sources)
    with pytest.raises(ValueError, match="unknown modes"):
        evaluate(
            generator, words_scorer, resolve_tasks("asdiv"), ["greedy"], 2, tmp_path, data=sources
        )
    with pytest.raises(ValueError, match="asdiv has no examples"):
        evaluate(
            generator, words_scorer, resolve_tasks("asdiv"), ["enabled"], 0, tmp_path, data=sources
        )


def test_a_generator_that_drops_prompts_is_an_error(sources: DataSources, tmp_path: Path) -> None:
    def short_generator(prompts, **_):
        return [FakeGeneration(" x")] * (len(prompts) - 1)

    with pytest.raises(ValueError, match=r"asdiv \[disabled\]: 1 outputs for 2 inputs"):
        evaluate(
            short_generator,
            words_scorer,
            resolve_tasks("asdiv"),
            ["disabled"],
            2,
            tmp_path,
            data=sources,
        )
