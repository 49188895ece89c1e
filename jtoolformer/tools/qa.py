"""QA in the spirit of Atlas: retrieve passages for the question, let a reader LM answer in a few words."""

from __future__ import annotations

from collections.abc import Sequence

from jtoolformer.tools.base import PromptedTool, TextGenerator, ToolContext, generate_checked
from jtoolformer.tools.language import has_letters
from jtoolformer.tools.retrieval import PassageIndex
from jtoolformer.tools.text import clean_and_shorten, clean_text, fill_template, first_sentence, package_text, shorten

_QUOTES = "\"'“”‘’«»`"


def short_answer(generated: str, *, max_words: int, max_chars: int) -> str:
    """The reader's answer cut to its first line and sentence, unquoted, without a final period."""
    answer = clean_text(first_sentence(generated)).strip(_QUOTES + " ").rstrip(".").strip(_QUOTES + " ")
    return shorten(" ".join(answer.split()[:max_words]), max_chars)


class QA(PromptedTool):
    name = "QA"
    prompt_name = "qa"
    quoted_input = True

    def __init__(self, index: PassageIndex, reader: TextGenerator, *, passages: int = 3,
                 passage_chars: int = 400, max_question_chars: int = 300, max_new_tokens: int = 24,
                 max_answer_words: int = 10, max_answer_chars: int = 100):
        self.index, self.reader = index, reader
        self.passages, self.passage_chars = passages, passage_chars
        self.max_question_chars, self.max_new_tokens = max_question_chars, max_new_tokens
        self.max_answer_words, self.max_answer_chars = max_answer_words, max_answer_chars

    def reader_prompt(self, question: str) -> str:
        """The reader's prompt: the top passages for the question, then the question."""
        found = self.index.search(question, k=self.passages)
        passages = "\n".join(f"Passage ({p.title}): {shorten(p.text, self.passage_chars)}" for p in found)
        return fill_template(package_text("templates", "qa_reader.txt").rstrip(), passages=passages,
                             question=question)

    def __call__(self, input: str, context: ToolContext) -> str:
        return self.call_batch([input], [context])[0]

    def call_batch(self, inputs: Sequence[str], contexts: Sequence[ToolContext]) -> list[str]:
        """One reader generation for all questions; a question without letters gets ""."""
        questions = [clean_and_shorten(q, self.max_question_chars) for q in inputs]
        asked = [i for i, q in enumerate(questions) if has_letters(q)]
        answers = [""] * len(questions)
        if asked:
            outputs = generate_checked(self.reader, [self.reader_prompt(questions[i]) for i in asked],
                                       self.max_new_tokens, ["\n"])
            for i, output in zip(asked, outputs, strict=True):
                answers[i] = short_answer(output, max_words=self.max_answer_words,
                                          max_chars=self.max_answer_chars)
        return answers
