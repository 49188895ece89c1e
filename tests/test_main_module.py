import subprocess
import sys


def test_python_m_jtoolformer_lists_the_subcommands():
    proc = subprocess.run([sys.executable, "-m", "jtoolformer", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: jtoolformer")
    for command in ("annotate", "train", "generate", "index", "eval", "demo"):
        assert command in proc.stdout


def test_a_warning_during_a_progress_bar_starts_on_a_cleared_line(monkeypatch, capsys):
    import argparse
    import logging

    from tqdm import tqdm

    from jtoolformer.cli import main as cli

    def command(args) -> int:
        with tqdm(total=2, desc="annotate") as bar:
            bar.update()
            logging.getLogger("jtoolformer.tools.executor").warning("Calculator failed")
            bar.update()
        return 0

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=command)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setenv("JTOOLFORMER_COMPILATION_CACHE", "0")
    assert cli.main([]) == 0
    err = capsys.readouterr().err
    before, _, _ = err.partition("Calculator failed")
    assert before.rpartition("\r")[2].strip() == ""  # the bar's text was erased, not continued
