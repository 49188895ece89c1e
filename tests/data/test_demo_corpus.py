import datetime
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from jtoolformer.data.corpus import DEMO_CORPUS
from jtoolformer.data.documents import read_jsonl

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_demo_corpus.py"
DOCUMENTS = list(read_jsonl(DEMO_CORPUS))


def test_script_reproduces_the_committed_corpus(tmp_path):
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "demo.jsonl")], check=True, capture_output=True)
    assert (tmp_path / "demo.jsonl").read_bytes() == DEMO_CORPUS.read_bytes()


def test_corpus_covers_every_tool():
    kinds = Counter(doc["id"].split("-")[0] for doc in DOCUMENTS)
    assert 250 <= len(DOCUMENTS) <= 350
    assert kinds["calc"] >= 60 and kinds["date"] >= 60 and kinds["fact"] >= 80 and kinds["mt"] >= 25
    dated = [doc for doc in DOCUMENTS if doc["date"] or re.search(r"/\d{4}/\d{2}/\d{2}/", doc["url"])]
    assert len(dated) == kinds["date"] and any(doc["url"] for doc in dated) and any(doc["date"] for doc in dated)
    chunks = [re.search(r'"([^"]+)"', doc["text"]) for doc in DOCUMENTS if doc["id"].startswith("mt")]
    assert all(chunk and len(chunk.group(1).split()) >= 4 for chunk in chunks)
    foreign = " ".join(chunk.group(1) for chunk in chunks).split()
    assert {"vous", "nicht", "está"} <= set(foreign), "French, German and Spanish chunks"


def test_computed_numbers_are_right():
    percentages = christmases = 0
    for doc in DOCUMENTS:
        if m := re.fullmatch(r"Out of (\d+) participants, (\d+) \(or (\d+)%\) passed the test\.", doc["text"]):
            total, passed, percent = map(int, m.groups())
            assert abs(100 * passed / total - percent) <= 0.5, doc
            percentages += 1
        if m := re.match(r"Only (\d+) days are left until Christmas", doc["text"]):
            day = datetime.date.fromisoformat(doc["date"]) if doc["date"] else datetime.date(*map(int, doc["url"].split("/")[3:6]))
            christmas = datetime.date(day.year, 12, 25)
            christmas = christmas if christmas >= day else christmas.replace(year=day.year + 1)
            assert (christmas - day).days == int(m.group(1)), doc
            christmases += 1
    assert percentages >= 5 and christmases >= 5
