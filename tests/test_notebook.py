"""notebooks/quickstart.ipynb, top to bottom on a real kernel in its small mode, as a CPU Colab runs it."""

import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"
BUDGET_S = 300  # the bound on the whole small-mode run


def test_the_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.outputs for cell in code if cell.outputs] == []
    assert {cell.execution_count for cell in code} == {None}
    assert "SMALL = True" in next(c.source for c in code if "parameters" in c.metadata.get("tags", []))


@pytest.mark.slow
def test_the_quickstart_runs_in_small_mode(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # One CPU device, like a CPU Colab runtime (conftest.py simulates 8 for the other tests).
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    client = NotebookClient(notebook, timeout=BUDGET_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    try:
        client.execute(env=env)
    finally:  # the executed notebook, with each cell's outputs and timing, for a post-mortem
        nbformat.write(notebook, tmp_path / NOTEBOOK.name)
    seconds = time.perf_counter() - started
    print(f"quickstart notebook, small mode: {seconds:.0f} s")

    run = tmp_path / "quickstart_run"
    stats = json.loads((run / "annotate" / "stats.json").read_text())
    assert stats["Calculator"]["documents"] == 4 and stats["Calculator"]["calls_sampled"] > 0
    candidates = (run / "annotate" / "candidates.jsonl").read_text().splitlines()
    assert len(candidates) == stats["Calculator"]["calls_sampled"]
    steps = [json.loads(line) for line in (run / "train" / "metrics.jsonl").open()]
    assert [s["step"] for s in steps if "loss" in s] == [1, 2]
    results = json.loads((run / "eval" / "results.json").read_text())["results"]
    assert [(r["task"], r["mode"], r["n"]) for r in results] == [("asdiv", "enabled", 3)]
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "calculator(400 / 1400) -> '0.29' (ok)" in printed  # the call the prompt opened was executed
    assert "forward over (1, 128): run" in printed  # the mesh section ran (a tiny GPT-J on the CPU)
    assert seconds < BUDGET_S
