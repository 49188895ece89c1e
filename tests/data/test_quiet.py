"""Building and opening our TFDS datasets prints only what we say: no absl/TFDS notices, no bars."""

import json
import subprocess
import sys

SCRIPT = """
import json, sys
from pathlib import Path
from jtoolformer.annotate.dataset import build_c_star, open_c_star
from jtoolformer.data.corpus import open_corpus

out = Path(sys.argv[1])
for _ in range(2):  # a build, then a reuse
    assert len(open_corpus(out / "docs.jsonl", out / "data")) == 2
record = dict(id="a", text="t", original="o", url="", date="", calls=[])
(out / "shard.jsonl").write_text(json.dumps(record) + "\\n")
build_c_star([out / "shard.jsonl"], out / "cstar")
assert len(open_c_star(out / "cstar")) == 1
print("done")
"""

NOISE = ("Using custom data configuration", "has no dataset_info.json", "Downloading and preparing",
         "downloaded and prepared", "Generating", "Shuffling", "absl", "\r", "\x1b[")


def test_corpus_and_c_star_builds_show_only_our_messages(tmp_path):
    docs = [{"text": "one"}, {"text": ""}, {"text": "two"}]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert [noise for noise in NOISE if noise in output] == []
    assert proc.stdout == "done\n"
    assert "left out 1 bad documents" in proc.stderr  # our own warning still reaches the user
