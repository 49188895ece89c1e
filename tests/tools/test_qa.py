import re
import time

import pytest
from hypothesis import given
from tools_fuzz import FUZZ_SETTINGS, TIME_LIMIT_S, hostile_text

from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.qa import QA, short_answer
from jtoolformer.tools.wikisearch import bundled_index

NO_CONTEXT = ToolContext()


class TitleReader:
    """A deterministic reader: answers with the title of the first retrieved passage in its prompt,
    wrapped the way a small LM rambles (quotes, a period, a second sentence and a second line)."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, max_new_tokens=64, *, stop=None):
        self.calls.append((list(prompts), max_new_tokens, stop))
        outputs = []
        for prompt in prompts:
            titles = re.findall(r"^Passage \((.*?)\):", prompt.rsplit("Question:", 1)[0], re.MULTILINE)
            answer = titles[1] if len(titles) > 1 else "no idea"  # titles[0] is the template's example
            outputs.append(f' "{answer}." That is in the passages.\nQuestion: something else')
        return outputs


def test_answers_from_retrieved_passages():
    reader = TitleReader()
    qa = QA(bundled_index(), reader)
    assert qa("Who founded Nintendo?", NO_CONTEXT) == "Nintendo"
    [(prompts, max_new_tokens, stop)] = reader.calls
    prompt = prompts[0]
    assert prompt.startswith("Answer the question in a few words")
    assert "Fusajiro Yamauchi" in prompt  # the Nintendo passage was retrieved and shown
    assert prompt.endswith("Question: Who founded Nintendo?\nAnswer:")
    assert prompt.count("Passage (") == 1 + qa.passages
    assert (max_new_tokens, stop) == (qa.max_new_tokens, ["\n"])


def test_batch_is_one_generation_and_questions_without_letters_are_not_asked():
    reader = TitleReader()
    qa = QA(bundled_index(), reader)
    answers = qa.call_batch(["Who wrote Pride and Prejudice?", "???", "", "Which river flows into the Caspian Sea?"],
                            [NO_CONTEXT] * 4)
    assert answers == ["Jane Austen", "", "", "Volga"]
    assert len(reader.calls) == 1 and len(reader.calls[0][0]) == 2


def test_passages_in_the_prompt_are_bounded():
    qa = QA(bundled_index(), TitleReader(), passages=2, passage_chars=60)
    prompt = qa.reader_prompt("capital city")
    passage_lines = [line for line in prompt.splitlines() if line.startswith("Passage (")][1:]
    assert len(passage_lines) == 2
    assert all(len(line.split("): ", 1)[1]) <= 60 for line in passage_lines)


@pytest.mark.parametrize("generated, answer", [
    (" Paris", "Paris"),
    ('"Jane Austen."\nmore text', "Jane Austen"),
    ("Paris. It is the capital.", "Paris"),
    ("3.5 metres tall", "3.5 metres tall"),
    ("\n\n  Canberra  \n", "Canberra"),
    ("one two three four five six seven eight nine ten eleven", "one two three four five six seven eight nine ten"),
    ("", ""),
])
def test_short_answer(generated, answer):
    assert short_answer(generated, max_words=10, max_chars=100) == answer


def test_a_reader_that_miscounts_is_an_error():
    class Miscounting:
        def generate(self, prompts, max_new_tokens=64, *, stop=None):
            return ["a", "b"]

    with pytest.raises(ValueError, match="one string per prompt"):
        QA(bundled_index(), Miscounting())("Who?", NO_CONTEXT)


class EchoReader:
    def generate(self, prompts, max_new_tokens=64, *, stop=None):
        return [p[-80:][::-1] + "\n" + p[:40] for p in prompts]


@FUZZ_SETTINGS
@given(question=hostile_text)
def test_fuzz_qa(question):
    qa = QA(bundled_index(), EchoReader())
    started = time.perf_counter()
    answer = qa(question, NO_CONTEXT)
    assert time.perf_counter() - started < TIME_LIMIT_S
    assert isinstance(answer, str) and len(answer) <= qa.max_answer_chars and "\n" not in answer
