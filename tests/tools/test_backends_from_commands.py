"""Every command can back WikiSearch and QA with an index built by `jtoolformer index build` and MT
with a seq2seq model, from the command line (and annotate from its config); the bundled passages
stay the default and say so."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from jtoolformer.cli.main import main
from jtoolformer.errors import UsageError
from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.mt import PromptedTranslator, Seq2SeqTranslator
from jtoolformer.tools.registry import ToolBackends, describe_backends
from jtoolformer.tools.wikisearch import bundled_index

PASSAGES = [
    {"title": "Okapi", "text": "The okapi is a giraffid that lives in the rainforest of the Congo."},
    {"title": "Quokka", "text": "The quokka is a small wallaby found on Rottnest Island."},
    {"title": "Axolotl", "text": "The axolotl is a salamander from the lakes of Xochimilco."},
]


class Reader:
    """A TextGenerator that answers with the title of the best passage the QA reader was given."""

    tokenizer = object()

    def generate(self, prompts, max_new_tokens=64, *, stop=None):
        found = [re.search(r"Passage \((\w+)\)", p.split("\n\n")[-1]) for p in prompts]  # after the example
        return [match.group(1) if match else "" for match in found]


class Captured(Exception):
    """Raised where a command would start its work, carrying the tools it built."""

    def __init__(self, tools):
        super().__init__("captured")
        self.tools = tools


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("index")
    source = folder / "passages.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in PASSAGES), encoding="utf-8")
    assert main(["index", "build", "--source", str(source), "--out", str(folder / "idx")]) == 0
    return folder / "idx"


def test_tools_read_the_built_index(index_dir):
    tools = ToolBackends(index=str(index_dir)).make_tools("wikisearch,qa", generator=Reader())
    assert tools["WikiSearch"]("quokka island", ToolContext()) == PASSAGES[1]["text"]
    assert tools["QA"]("Where does the axolotl live?", ToolContext()) == "Axolotl"
    assert tools["WikiSearch"].index is tools["QA"].index  # opened once


def test_what_backs_each_tool_is_said(index_dir, tmp_path):
    given = ToolBackends(index=str(index_dir), mt_model=str(tmp_path)).make_tools("calculator,wikisearch,qa,mt",
                                                                                  Reader())
    assert isinstance(given["MT"].translator, Seq2SeqTranslator)
    assert describe_backends(given) == [
        f"WikiSearch: BM25 over 3 passages from {index_dir}",
        f"QA: BM25 over 3 passages from {index_dir}, read by the language model",
        f"MT: language identified by langid, translated by the seq2seq model in {tmp_path}",
    ]
    default = ToolBackends().make_tools("wikisearch,mt", Reader())
    assert default["WikiSearch"].index is bundled_index() and isinstance(default["MT"].translator, PromptedTranslator)
    wikisearch, mt = describe_backends(default)
    assert wikisearch.startswith(f"WikiSearch: BM25 over {len(bundled_index())} passages from the bundled demo set")
    assert "prompted to translate" in mt


def test_bad_backends_are_usage_errors(index_dir, tmp_path):
    (tmp_path / "meta.json").write_text('{"format": 99}')
    incomplete = tmp_path / "incomplete"
    shutil.copytree(index_dir, incomplete)
    (incomplete / "passages.jsonl").unlink()
    for backends, message in [(ToolBackends(index=str(tmp_path / "nope")), "no meta.json"),
                              (ToolBackends(index=str(tmp_path)), "index format 99"),
                              (ToolBackends(index=str(incomplete)), "incomplete, passages.jsonl missing"),
                              (ToolBackends(mt_model=str(tmp_path / "nope")), "no such directory")]:
        with pytest.raises(UsageError, match=message):
            backends.check()
    ToolBackends(index=str(index_dir), mt_model=str(tmp_path)).check()


def capture_at(monkeypatch, module: str, builder: str) -> None:
    """`module.builder(lm, tools, …)` raises Captured(tools); `module.load…` returns a Reader."""
    def build(lm, tools, *args, **kwargs):
        raise Captured(tools)

    monkeypatch.setattr(f"{module}.{builder}", build)


def test_generate_takes_the_index_and_says_so(index_dir, monkeypatch, capsys):
    monkeypatch.setattr("jtoolformer.generate.cli.load_from_args", lambda args: Reader())
    capture_at(monkeypatch, "jtoolformer.generate.cli", "ToolGenerator")
    with pytest.raises(Captured) as captured:
        main(["generate", "--tools", "calculator,wikisearch,qa", "--index", str(index_dir), "Okapis live in"])
    assert captured.value.tools["WikiSearch"].index.origin == str(index_dir)
    assert f"QA: BM25 over 3 passages from {index_dir}" in capsys.readouterr().err


def test_generate_checks_the_index_before_loading_the_model(tmp_path, monkeypatch, capsys):
    def load(args):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("jtoolformer.generate.cli.load_from_args", load)
    assert main(["generate", "--index", str(tmp_path / "missing"), "Hello"]) == 2
    assert "missing" in capsys.readouterr().err


def test_eval_takes_the_index_and_mt_model(index_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("jtoolformer.evaluate.model.load_model", lambda model, mesh=None: Reader())
    capture_at(monkeypatch, "jtoolformer.evaluate.model", "ToolGenerator")
    with pytest.raises(Captured) as captured:
        main(["eval", "--model", "m", "--tasks", "lama_squad", "--data-dir", str(tmp_path), "--out",
              str(tmp_path / "out"), "--index", str(index_dir), "--mt-model", str(tmp_path)])
    tools = captured.value.tools
    assert tools["QA"].index.origin == str(index_dir) and tools["MT"].translator.model_dir == tmp_path
    assert f"WikiSearch: BM25 over 3 passages from {index_dir}" in capsys.readouterr().out


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "a", "text": "The okapi lives in the Congo."}) + "\n", encoding="utf-8")
    return corpus


def annotate_tools(monkeypatch, argv: list[str]):
    monkeypatch.setattr("jtoolformer.annotate.cli.load_model", lambda model, mesh=None: Reader())
    capture_at(monkeypatch, "jtoolformer.annotate.cli", "Annotator")
    with pytest.raises(Captured) as captured:
        main(argv)
    return captured.value.tools


def test_annotate_takes_the_index_from_its_config_or_the_command_line(index_dir, tiny_corpus, tmp_path, monkeypatch,
                                                                      capsys):
    config = tmp_path / "annotate.yaml"
    config.write_text(f"tools: wikisearch,qa\nindex: {index_dir}\n")
    common = ["annotate", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "out")]
    tools = annotate_tools(monkeypatch, [*common, "--config", str(config)])
    assert tools["WikiSearch"].index.origin == tools["QA"].index.origin == str(index_dir)
    assert f"QA: BM25 over 3 passages from {index_dir}, read by the language model" in capsys.readouterr().out

    tools = annotate_tools(monkeypatch, [*common, "--tools", "wikisearch", "--index", str(index_dir)])
    assert tools["WikiSearch"].index.origin == str(index_dir)
    saved = (tmp_path / "out" / "annotate_config.yaml").read_text()
    assert f"index: {index_dir}" in saved  # part of the run's settings, so a resumed run keeps it

    tools = annotate_tools(monkeypatch, [*common, "--tools", "wikisearch"])
    assert tools["WikiSearch"].index is bundled_index()
    assert "from the bundled demo set" in capsys.readouterr().out


def test_demo_takes_the_index_and_otherwise_says_it_uses_the_bundled_passages(index_dir, tmp_path, monkeypatch,
                                                                              capsys):
    tools = annotate_tools(monkeypatch, ["demo", "--out", str(tmp_path / "a"), "--index", str(index_dir)])
    assert tools["WikiSearch"].index.origin == str(index_dir)
    tools = annotate_tools(monkeypatch, ["demo", "--out", str(tmp_path / "b")])
    assert tools["WikiSearch"].index is bundled_index()
    assert "WikiSearch: BM25 over 125 passages from the bundled demo set" in capsys.readouterr().out
