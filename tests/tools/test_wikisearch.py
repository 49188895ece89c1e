import argparse
import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from tools_fuzz import FUZZ_SETTINGS, TIME_LIMIT_S, hostile_text

import jtoolformer.tools as tools_package
from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.cli import add_index_command
from jtoolformer.tools.retrieval import Passage, PassageIndex, build_index, read_passages
from jtoolformer.tools.wikisearch import WikiSearch, bundled_index

NO_CONTEXT = ToolContext()


BUNDLED = Path(tools_package.__file__).parent / "data" / "passages.jsonl"


@pytest.fixture(scope="module")
def saved_index(tmp_path_factory):
    """The bundled collection built into an index directory and loaded back, memory-mapped."""
    return build_index(BUNDLED, tmp_path_factory.mktemp("index"))


def test_bundled_collection_is_a_usable_size_with_unique_titles():
    passages = list(read_passages(BUNDLED))
    assert 60 <= len(passages) <= 150 and len(bundled_index()) == len(passages)
    assert len({p.title for p in passages}) == len(passages)


@pytest.mark.parametrize("query, title", [
    ("Brown Act", "Ralph M. Brown Act"),
    ("capital of Australia", "Canberra"),
    ("Who founded Nintendo?", "Nintendo"),
    ("Danube river Black Sea", "Danube"),
    ("first woman in space", "Valentina Tereshkova"),
    ("When did the Berlin Wall fall", "Fall of the Berlin Wall"),
])
def test_search_finds_the_right_passage(saved_index, query, title):
    assert saved_index.search(query, k=1)[0].title == title
    assert bundled_index().search(query, k=1)[0].title == title


def test_saved_index_is_memory_mapped_and_ranks_like_the_in_memory_one(saved_index):
    assert isinstance(saved_index._retriever.scores["data"], np.memmap)
    for query in ["river", "Nobel Prize physics", "company founded in 1937", "Paris"]:
        assert saved_index.search(query, k=5) == bundled_index().search(query, k=5)


def test_wikisearch_returns_a_bounded_snippet_of_the_top_passage(saved_index):
    tool = WikiSearch(saved_index, max_chars=120)
    result = tool("Brown Act", NO_CONTEXT)
    top = saved_index.search("Brown Act")[0].text
    assert 0 < len(result) <= 120 and top.startswith(result)
    assert WikiSearch(saved_index)("Brown Act", NO_CONTEXT) == top


def test_two_snippets_join_the_two_best_passages(saved_index):
    first, second = saved_index.search("river Africa", k=2)
    assert WikiSearch(saved_index, snippets=2, max_chars=10_000)("river Africa", NO_CONTEXT) == \
        f"{first.text} {second.text}"


@pytest.mark.parametrize("query", ["", "   ", "the of and", "zzzqqqxxy", "!!!", "\x00\ud800"])
def test_queries_without_known_terms_find_nothing(saved_index, query):
    assert saved_index.search(query) == []
    assert WikiSearch(saved_index)(query, NO_CONTEXT) == ""


def test_concurrent_searches_agree_with_sequential_ones(saved_index):
    queries = ["river", "capital city", "physicist Nobel", "company Japan", "war 1945", "penguin"] * 20
    expected = [saved_index.search(q, k=3) for q in queries]
    got = [None] * len(queries)

    def work(offset):
        for i in range(offset, len(queries), 8):
            got[i] = saved_index.search(queries[i], k=3)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == expected


def test_kilt_style_records_and_text_folders(tmp_path):
    jsonl = tmp_path / "kilt.jsonl"
    jsonl.write_text(json.dumps({"wikipedia_title": "Aardvark", "text": ["An aardvark", " eats ants.\n"]}) + "\n\n"
                     + json.dumps({"title": "Zebra", "text": "A zebra has stripes."}) + "\n", encoding="utf-8")
    assert list(read_passages(jsonl)) == [Passage("Aardvark", "An aardvark eats ants."),
                                          Passage("Zebra", "A zebra has stripes.")]
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "Blue_whale.txt").write_text("The blue whale is large.\n\nIt eats krill.\n", encoding="utf-8")
    (folder / "sub" / "Okapi.txt").write_text("The okapi lives in Congo.", encoding="utf-8")
    passages = list(read_passages(folder))
    assert passages == [Passage("Blue whale", "The blue whale is large."), Passage("Blue whale", "It eats krill."),
                        Passage("Okapi", "The okapi lives in Congo.")]
    index = build_index(folder, tmp_path / "index")
    assert index.search("krill")[0] == Passage("Blue whale", "It eats krill.")


@pytest.mark.parametrize("content, message", [
    ('{"title": "A", "text": "ok"}\nnot json\n', ":2: not a JSON object"),
    ('{"title": "A"}\n', ":1: needs a 'text'"),
    ('[1, 2]\n', ":1: needs a 'text'"),
])
def test_bad_sources_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=f"bad.jsonl{message}"):
        list(read_passages(path))


def test_empty_or_missing_sources_and_indexes_are_refused(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        build_index(tmp_path / "empty.jsonl", tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        list(read_passages(tmp_path / "missing.jsonl"))
    with pytest.raises(FileNotFoundError, match="index build"):
        PassageIndex.load(tmp_path)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_building_an_index_logs_nothing_below_the_applications_level():
    """As after `logging.basicConfig(level=logging.INFO)`: the root at INFO, its handler taking all."""
    root, handler = logging.getLogger(), _Records()
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        PassageIndex.from_passages([Passage("Paris", "Paris is the capital of France.")])
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert not [r for r in handler.records if r.levelno < logging.INFO]


def test_index_build_command(tmp_path, capsys):
    source = tmp_path / "p.jsonl"
    source.write_text(json.dumps({"title": "Okapi", "text": "The okapi lives in Congo."}) + "\n"
                      + json.dumps({"title": "Zebra", "text": "A zebra has stripes."}) + "\n", encoding="utf-8")
    parser = argparse.ArgumentParser(prog="jtoolformer")
    add_index_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["index", "build", "--source", str(source), "--out", str(tmp_path / "idx")])
    assert args.func(args) == 0
    assert "indexed 2 passages" in capsys.readouterr().out
    assert PassageIndex.load(tmp_path / "idx").search("stripes") == [Passage("Zebra", "A zebra has stripes.")]


@FUZZ_SETTINGS
@given(query=hostile_text)
def test_fuzz_wikisearch(saved_index, query):
    tool = WikiSearch(saved_index)
    started = time.perf_counter()
    result = tool(query, NO_CONTEXT)
    assert time.perf_counter() - started < TIME_LIMIT_S
    assert isinstance(result, str) and len(result) <= tool.max_chars
