import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jtoolformer.data.corpus import build_corpus, open_corpus
from jtoolformer.data.documents import CorpusError, read_jsonl, read_txt_folder

DOCS = [
    {"id": "a1", "text": "Out of 1400 participants, 400 (or 29%) passed the test.", "url": "https://x.org/2020/05/01/t"},
    {"text": "Berlin is the capital of Germany.", "date": "2021-03-14"},
    {"id": 17, "text": "Le chat dort. The cat sleeps, with ünïcode.", "extra": [1, 2]},
]


def write_jsonl(path: Path, docs: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs) + "\n\n", encoding="utf-8")
    return path


def test_jsonl_round_trip(tmp_path):
    source = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    corpus = open_corpus(str(source), tmp_path / "data")
    assert list(corpus) == [
        {"id": "a1", "text": DOCS[0]["text"], "url": DOCS[0]["url"], "date": ""},
        {"id": "docs.jsonl:2", "text": DOCS[1]["text"], "url": "", "date": "2021-03-14"},
        {"id": "17", "text": DOCS[2]["text"], "url": "", "date": ""},
    ]
    assert corpus[-1]["id"] == "17" and [d["id"] for d in corpus[1:]] == ["docs.jsonl:2", "17"]
    with pytest.raises(IndexError):
        corpus[3]


def test_txt_folder_round_trip(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("Second document.\n", encoding="utf-8")
    (folder / "a.txt").write_text("  First document,\nover two lines.\n", encoding="utf-8")
    (folder / "sub" / "c.txt").write_text("Über alles.", encoding="utf-8")
    (folder / "notes.md").write_text("not a document")
    corpus = open_corpus(folder, tmp_path / "data")
    assert list(corpus) == [
        {"id": "a.txt", "text": "First document,\nover two lines.", "url": "", "date": ""},
        {"id": "b.txt", "text": "Second document.", "url": "", "date": ""},
        {"id": "sub/c.txt", "text": "Über alles.", "url": "", "date": ""},
    ]


@pytest.mark.parametrize(
    ("line", "reason", "message"),
    [
        (b"{not json", "invalid_json", "invalid JSON"),
        (b'{"url": "https://x.org"}', "empty", "no 'text' field"),
        (b'{"text": ""}', "empty", "not a non-empty string"),
        (b'["a list"]', "invalid_json", "expected a JSON object"),
        (b'{"text": "caf\xe9"}', "not_utf8", "not valid UTF-8"),
        (b'{"text": "t", "date": "2021-02-30"}', "bad_metadata", "real date"),
        (b'{"text": "t", "date": "14.03.2021"}', "bad_metadata", "real date"),
        (b'{"text": "t", "url": 5}', "bad_metadata", "'url' must be"),
        (b'{"text": "t", "id": "first"}', "duplicate_id", "already used on line 1"),
        # Valid JSON that TFDS cannot store (half a surrogate pair), or that Python's parser refuses
        (b'{"text": "a \\ud800"}', "lone_surrogate", r"'text' holds a lone surrogate \\ud800 at character 2"),
        (b'{"text": "a", "id": "\\udfff x"}', "lone_surrogate", r"'id' holds a lone surrogate \\udfff"),
        (b'{"text": "a", "n": ' + b"7" * 4301 + b"}", "number_too_long", "integer of more than 4300 digits"),
        (b'{"text": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "too_deep", "nested too deeply"),
        (b'{"text": "a", "x": ' + b'{"y": ' * 100_000 + b"1" + b"}" * 100_001, "too_deep", "nested too deeply"),
    ],
)
def test_bad_jsonl_line_is_named_by_the_reader_and_left_out_of_the_build(tmp_path, line, reason, message):
    source = tmp_path / "bad.jsonl"
    source.write_bytes(b'{"id": "first", "text": "fine"}\n\n' + line + b'\n{"text": "also fine"}\n')
    with pytest.raises(CorpusError, match=message) as error:
        list(read_jsonl(source))
    assert str(error.value).startswith(f"{source}:3:")

    corpus = open_corpus(source, tmp_path / "data")
    assert [d["text"] for d in corpus] == ["fine", "also fine"]
    assert corpus.skipped == {reason: 1}
    assert open_corpus(source, tmp_path / "data").skipped == {reason: 1}, "a reused build still reports them"


def test_a_corpus_without_a_valid_document_is_refused_and_leaves_nothing_behind(tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_bytes(b'{"text": ""}\n{not json\n')
    with pytest.raises(CorpusError, match=r"no valid document .*2 bad documents \(1 empty, 1 invalid_json\).*bad.jsonl:1"):
        open_corpus(source, tmp_path / "data")
    assert not list((tmp_path / "data").glob("local_corpus/*/*")), "a failed build must leave no dataset behind"


def test_bad_txt_files_are_named_by_the_reader_and_left_out_of_the_build(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ok.txt").write_text("fine")
    (tmp_path / "docs" / "bad.txt").write_bytes(b"line one\nline two \xff\n")
    (tmp_path / "docs" / "blank.txt").write_text(" \n")
    with pytest.raises(CorpusError, match=rf"^{tmp_path}/docs/bad.txt:2: not valid UTF-8"):
        list(read_txt_folder(tmp_path / "docs"))
    corpus = open_corpus(tmp_path / "docs", tmp_path / "data")
    assert [d["id"] for d in corpus] == ["ok.txt"]
    assert corpus.skipped == {"not_utf8": 1, "empty": 1}


def test_reused_when_unchanged_and_rebuilt_when_changed(tmp_path):
    source = write_jsonl(tmp_path / "docs.jsonl", DOCS[:1])
    first = build_corpus(source, tmp_path / "data", name="mine")
    stamp = os.stat(first.data_dir).st_mtime_ns
    again = build_corpus(source, tmp_path / "data", name="mine")
    assert again.data_dir == first.data_dir and os.stat(again.data_dir).st_mtime_ns == stamp
    assert [d["text"] for d in open_corpus(source, tmp_path / "data")] == [DOCS[0]["text"]]

    write_jsonl(source, DOCS[1:])
    rebuilt = build_corpus(source, tmp_path / "data", name="mine")
    assert rebuilt.data_dir == first.data_dir
    assert [d["text"] for d in open_corpus(source, tmp_path / "data")] == [d["text"] for d in DOCS[1:]]


def test_txt_folder_is_rebuilt_when_a_file_is_added(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("one")
    assert len(open_corpus(tmp_path / "docs", tmp_path / "data")) == 1
    (tmp_path / "docs" / "b.txt").write_text("two")
    assert [d["id"] for d in open_corpus(tmp_path / "docs", tmp_path / "data")] == ["a.txt", "b.txt"]


class TinySentences(tfds.core.GeneratorBasedBuilder):
    """Another TFDS dataset, with its text under a different name and no id."""

    VERSION = tfds.core.Version("0.1.0")

    def _info(self) -> tfds.core.DatasetInfo:
        features = tfds.features.FeaturesDict({"sentence": tfds.features.Text(), "label": tfds.features.Scalar(np.int64)})
        return tfds.core.DatasetInfo(builder=self, features=features, disable_shuffling=True)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(["zero", "one"]), "test": self._generate_examples(["two"])}

    def _generate_examples(self, sentences):
        for i, sentence in enumerate(sentences):
            yield i, {"sentence": sentence, "label": i}


def test_existing_tfds_dataset_by_name_split_and_field(tmp_path):
    TinySentences(data_dir=tmp_path, file_format="array_record").download_and_prepare()
    assert list(open_corpus("tiny_sentences#sentence", tmp_path)) == [
        {"id": "0", "text": "zero", "url": "", "date": ""},
        {"id": "1", "text": "one", "url": "", "date": ""},
    ]
    assert [d["text"] for d in open_corpus("tiny_sentences:0.1.0@test#sentence", tmp_path)] == ["two"]
    with pytest.raises(CorpusError, match=r"no field 'text'; its fields are \['label', 'sentence'\]"):
        open_corpus("tiny_sentences", tmp_path)
    for split in ("nosplit", "train[:0]", "train[5:]"):
        with pytest.raises(CorpusError, match=rf"cannot read split '{re.escape(split)}' of tiny_sentences .*its "
                                              r"splits are test, train"):
            open_corpus(f"tiny_sentences@{split}#sentence", tmp_path)


def test_built_local_corpus_opens_by_its_tfds_name(tmp_path):
    source = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    build_corpus(source, tmp_path / "data", name="mine")
    assert list(open_corpus("local_corpus/mine", tmp_path / "data")) == list(open_corpus(source, tmp_path / "data"))


@pytest.mark.parametrize("spec", ["no_such_dataset_here#text", "missing/file.jsonl"])
def test_unknown_spec_says_what_to_give(tmp_path, spec):
    with pytest.raises(CorpusError, match="neither an existing file or folder"):
        open_corpus(spec, tmp_path)


def test_bom_and_any_line_ending_are_read_like_an_editor_does(tmp_path):
    bom = b"\xef\xbb\xbf"
    docs = [b'{"text": "one"}', b'{"text": "two"}', b'{"text": "three"}', b'{"text": "four"}']
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(bom + docs[0] + b"\r" + docs[1] + b"\r\n" + docs[2] + b"\n\r" + docs[3])
    corpus = open_corpus(source, tmp_path / "data")
    assert [d["text"] for d in corpus] == ["one", "two", "three", "four"]
    assert [d["id"] for d in corpus] == ["mixed.jsonl:1", "mixed.jsonl:2", "mixed.jsonl:3", "mixed.jsonl:5"]
    assert corpus.skipped == {}

    upper = tmp_path / "UPPER.JSONL"
    upper.write_bytes(docs[0])
    assert [d["text"] for d in open_corpus(upper, tmp_path / "data")] == ["one"]


def test_utf16_jsonl_is_refused_with_what_to_do(tmp_path):
    source = tmp_path / "wide.jsonl"
    source.write_bytes('{"text": "one"}\n'.encode("utf-16"))
    with pytest.raises(CorpusError, match=rf"^{source}: the file starts with a UTF-16 .*re-encode the file as UTF-8"):
        open_corpus(source, tmp_path / "data")


def test_txt_folder_reads_what_users_expect_and_counts_the_rest(tmp_path):
    folder = tmp_path / "docs"
    (folder / "real").mkdir(parents=True)
    (folder / "UPPER.TXT").write_bytes(b"shouting")
    (folder / "bom.txt").write_bytes(b"\xef\xbb\xbfmarked\r\nwindows\rold mac")
    (folder / "real" / "deep.Txt").write_bytes(b"nested")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "far.txt").write_bytes(b"linked")
    (folder / "via").symlink_to(tmp_path / "elsewhere")  # a linked folder is read
    (folder / "loop").symlink_to(folder)  # a link loop ends, and no folder is read twice
    (folder / "again").symlink_to(folder / "real")
    (folder / "broken.txt").symlink_to(tmp_path / "nowhere.txt")
    os.mkfifo(folder / "pipe.txt")  # reading it would wait forever
    (folder / "notes.md").write_text("not a document")
    (folder / "wide.txt").write_bytes("UTF-16".encode("utf-16"))
    corpus = open_corpus(folder, tmp_path / "data")
    assert [(d["id"], d["text"]) for d in corpus] == [
        ("UPPER.TXT", "shouting"),
        ("bom.txt", "marked\nwindows\nold mac"),
        ("real/deep.Txt", "nested"),
        ("via/far.txt", "linked"),
    ]
    assert corpus.skipped == {"unreadable": 2, "not_txt": 1, "not_utf8": 1}
    with pytest.raises(CorpusError, match=rf"^{folder}/broken.txt: .*broken symbolic link"):
        list(read_txt_folder(folder))


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf\r\n"])
def test_an_empty_corpus_says_so(tmp_path, content):
    source = tmp_path / "empty.jsonl"
    source.write_bytes(content)
    with pytest.raises(CorpusError, match=rf"^{source}: no documents"):
        open_corpus(source, tmp_path / "data")


def test_names_that_are_not_utf8_and_folders_that_cannot_be_listed_are_counted(tmp_path, monkeypatch):
    folder = tmp_path / "docs"
    (folder / "locked").mkdir(parents=True)
    (folder / "ok.txt").write_text("fine")
    (folder / "locked" / "hidden.txt").write_text("unseen")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "wb") as f:  # a Latin-1 name
        f.write(b"text")
    scandir = os.scandir

    def refusing(path):
        if os.fspath(path) == str(folder / "locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    corpus = open_corpus(folder, tmp_path / "data")
    assert [d["id"] for d in corpus] == ["ok.txt"]
    assert corpus.skipped == {"bad_file_name": 1, "unreadable": 1}
    with pytest.raises(CorpusError, match=r"caf\\xe9.txt: the file name is not UTF-8"):
        list(read_txt_folder(folder))


def test_files_joined_with_their_byte_order_marks_keep_every_document(tmp_path):
    source = tmp_path / "joined.jsonl"
    source.write_bytes(b'\xef\xbb\xbf{"text": "one"}\r\n\xef\xbb\xbf{"text": "two"}\r\n')
    assert [d["text"] for d in open_corpus(source, tmp_path / "data")] == ["one", "two"]


def test_a_folder_without_txt_files_says_what_to_give(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"empty: no .txt files found; put one document per .txt file in the folder$"):
        open_corpus(tmp_path / "empty", tmp_path / "data")
    write_jsonl(tmp_path / "empty" / "docs.jsonl", DOCS)
    with pytest.raises(CorpusError, match=r"a JSONL corpus is given as its file, e.g. .*empty/docs.jsonl"):
        open_corpus(tmp_path / "empty", tmp_path / "data")
