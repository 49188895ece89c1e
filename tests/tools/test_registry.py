import subprocess
import sys

import pytest

from jtoolformer.tools import make_tools
from jtoolformer.tools.base import Tool, ToolContext
from jtoolformer.tools.mt import MT, PromptedTranslator
from jtoolformer.tools.retrieval import build_index
from jtoolformer.tools.wikisearch import bundled_index


class SilentLM:
    def generate(self, prompts, max_new_tokens=64, *, stop=None):
        return ["" for _ in prompts]


def test_make_tools_by_name_keyed_by_api_name():
    tools = make_tools(" Calculator, calendar,wikisearch,qa,MT ", generator=SilentLM())
    assert list(tools) == ["Calculator", "Calendar", "WikiSearch", "QA", "MT"]
    assert all(isinstance(tool, Tool) and tool.name == name for name, tool in tools.items())
    assert isinstance(tools["MT"], MT) and isinstance(tools["MT"].translator, PromptedTranslator)
    assert tools["WikiSearch"].index is bundled_index() and tools["QA"].index is bundled_index()


def test_an_index_directory_is_loaded(tmp_path):
    source = tmp_path / "p.jsonl"
    source.write_text('{"title": "Okapi", "text": "The okapi lives in Congo."}\n', encoding="utf-8")
    build_index(source, tmp_path / "idx")
    tools = make_tools(["wikisearch"], index=str(tmp_path / "idx"))
    assert tools["WikiSearch"]("okapi", ToolContext()) == "The okapi lives in Congo."


@pytest.mark.parametrize("names, backends, message", [
    ("calculator,weather", {}, "unknown tool"),
    ("qa", {}, "generator="),
    ("mt", {}, "translator=, mt_model_dir= or generator="),
])
def test_missing_backends_and_unknown_names_are_explained(names, backends, message):
    with pytest.raises(ValueError, match=message):
        make_tools(names, **backends)


def test_a_missing_model_directory_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model directory"):
        make_tools("mt", mt_model_dir=tmp_path / "missing")


def test_importing_the_tools_starts_no_jax_backend():
    """bm25s runs a JAX computation when imported; that must wait until the index is used, after a
    multi-host run has initialised jax.distributed."""
    code = "import sys, jtoolformer.tools; print('jax' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False"
