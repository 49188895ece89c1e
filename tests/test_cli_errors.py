"""A config or usage mistake is one line on stderr and exit status 2, found before any model loads."""

import subprocess
import sys

import pytest

from jtoolformer.cli import main as cli
from jtoolformer.errors import UsageError

NO_MODEL = "/nonexistent/model"  # loading it would fail: an error about anything else was found first


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "Out of 1400 participants, 400 passed."}\n')
    return path


def fails(argv, capsys, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"jtoolformer {argv[0]}: error: "), err
    assert message in err, err
    return err


@pytest.mark.parametrize(("extra", "message"), [
    (["batch_dcos=4"], "unknown AnnotateConfig keys ['batch_dcos']"),
    (["batch_docs=-1"], "batch_docs=-1 must be an integer >= 1"),
    (["temperature=nan"], "temperature=nan must be a finite number > 0"),
    (["batch_docs"], "override 'batch_docs' is not of the form key=value"),
    (["--config", "/nonexistent/annotate.yaml"], "/nonexistent/annotate.yaml: cannot read the config"),
    (["--mesh", "a,b"], "--mesh 'a,b': expected three integers data,fsdp,tensor"),
    (["--mesh", "3,1,1"], "--mesh '3,1,1': mesh data=3"),
    (["--tools", "calculator,weather"], "unknown tool(s) ['weather']"),
])
def test_annotate_usage_mistakes(tmp_path, corpus, capsys, extra, message):
    fails(["annotate", "--corpus", str(corpus), "--out", str(tmp_path / "out"), "--model", NO_MODEL, *extra],
          capsys, message)


def test_annotate_checks_the_corpus_and_the_output_before_the_model(tmp_path, corpus, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    fails(["annotate", "--corpus", str(empty), "--out", str(tmp_path / "out"), "--model", NO_MODEL], capsys,
          f"{empty}: no documents")
    fails(["annotate", "--corpus", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out"), "--model",
           NO_MODEL], capsys, "neither an existing file or folder")
    fails(["annotate", "--corpus", str(corpus), "--out", str(corpus / "out"), "--model", NO_MODEL], capsys,
          "Not a directory")
    fails(["annotate", "--corpus", str(corpus), "--out", str(tmp_path / "out"), "--model", NO_MODEL], capsys,
          f"{NO_MODEL}: not a checkpoint directory")  # everything else was fine: now the model


@pytest.mark.parametrize(("extra", "message"), [
    (["optim.learning_rate=nan"], "optim.learning_rate=nan must be a finite number > 0"),
    (["optim.learning_rate=1e999"], "optim.learning_rate=inf must be a finite number > 0"),
    (["optim.b1=5"], "optim.b1=5 must be a finite number >= 0 and < 1"),
    (["mesh.data=3"], "mesh data=3"),
    (["--data", "/nonexistent/texts.jsonl"], "neither an existing file or folder"),
])
def test_train_usage_mistakes(tmp_path, corpus, capsys, extra, message):
    data = extra if "--data" in extra else ["--data", str(corpus)]
    overrides = [f"model={NO_MODEL}", "steps=1", "global_batch=1", *(e for e in extra if e not in data)]
    fails(["train", "--out", str(tmp_path / "run"), *data, *overrides], capsys, message)


def test_train_without_data(tmp_path, capsys):
    fails(["train", "--out", str(tmp_path / "run")], capsys, "--data is required")


@pytest.mark.parametrize(("extra", "message"), [
    (["--mesh", "a,b"], "--mesh 'a,b'"),
    (["--temperature", "nan"], "temperature=nan must be a finite number >= 0"),
    (["--top-p", "0"], "top_p=0.0 must be a finite number > 0 and <= 1"),
    (["--tools", "calculator,weather"], "unknown tool(s) ['weather']"),
    ([], f"{NO_MODEL}: not a checkpoint directory"),
])
def test_generate_usage_mistakes(capsys, extra, message):
    fails(["generate", "--model", NO_MODEL, *extra, "Hello"], capsys, message)


def test_eval_checks_its_data_dir_before_the_model(tmp_path, capsys):
    fails(["eval", "--model", NO_MODEL, "--tasks", "math", "--data-dir", str(tmp_path / "none"), "--out",
           str(tmp_path / "out")], capsys, "--data-dir")


def test_jtoolformer_debug_gives_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("JTOOLFORMER_DEBUG", "1")
    with pytest.raises(UsageError, match="batch_docs=-1"):
        cli.main(["annotate", "--out", str(tmp_path), "batch_docs=-1"])


def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jtoolformer", "train", "--out", str(tmp_path), "steps=-3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "jtoolformer train: error: overrides: steps=-3 must be an integer >= 1\n"


@pytest.mark.parametrize("argv", [
    ["annotate", "--out", "x", "--limit", "-5"],  # kept all but the last 5 documents
    ["generate", "--max-new-tokens", "-1", "Hi"],
    ["generate", "--max-calls", "-2", "Hi"],
    ["generate", "--seed", "-1", "Hi"],
    ["eval", "--model", "m", "--data-dir", ".", "--out", "o", "--batch-size", "0"],
    ["eval", "--model", "m", "--data-dir", ".", "--out", "o", "--limit", "-1"],
    ["annotate", "--out", "x", "--num-processes", "0"],
    ["annotate", "--out", "x", "--process-id", "two"],
    ["demo", "--out", "x", "--documents", "-3"],  # annotated all but the last 3 of the demo's documents
])
def test_negative_counts_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert f"argument {next(a for a in argv if a.startswith('--') and a not in ('--out', '--model', '--data-dir'))}" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--tasks", "lamma"], "unknown task 'lamma'"),
    (["--modes", "enabled,sometimes"], "unknown modes ['sometimes']"),
])
def test_eval_checks_tasks_and_modes_before_the_model(tmp_path, capsys, extra, message):
    fails(["eval", "--model", NO_MODEL, "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), *extra], capsys,
          message)


def test_an_output_path_that_is_a_file_is_named_before_the_model(tmp_path, corpus, capsys):
    taken = tmp_path / "taken"
    taken.write_text("")
    fails(["train", "--data", str(corpus), "--out", str(taken / "run"), f"model={NO_MODEL}"], capsys, "Not a directory")
    fails(["eval", "--model", NO_MODEL, "--data-dir", str(tmp_path), "--out", str(taken)], capsys, "File exists")
