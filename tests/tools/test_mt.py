import time

import pytest
from hypothesis import given
from tools_fuzz import FUZZ_SETTINGS, TIME_LIMIT_S, hostile_text

from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.language import identify_language
from jtoolformer.tools.mt import MT, PromptedTranslator

NO_CONTEXT = ToolContext()
DICTIONARY = {"Le chat dort sur le canapé.": "The cat is sleeping on the sofa.",
              "Der Hund schläft im Garten.": "The dog sleeps in the garden.",
              "tortuga": "turtle"}


class DictionaryLM:
    """A deterministic TextGenerator that translates the prompt's last source line from a dictionary."""

    def __init__(self):
        self.prompts = []

    def generate(self, prompts, max_new_tokens=64, *, stop=None):
        self.prompts.extend(prompts)
        outputs = []
        for prompt in prompts:
            source = prompt.splitlines()[-2].split(": ", 1)[1]
            outputs.append(f" {DICTIONARY.get(source, 'unknown')}\nSpanish: next example")
        return outputs


def test_translates_foreign_text_with_the_language_named_in_the_prompt():
    lm = DictionaryLM()
    mt = MT(PromptedTranslator(lm))
    assert mt("Le chat dort sur le canapé.", NO_CONTEXT) == "The cat is sleeping on the sofa."
    assert lm.prompts[0].startswith("Translate the text into English.")
    assert lm.prompts[0].endswith("French: Le chat dort sur le canapé.\nEnglish:")


def test_english_and_letterless_text_is_not_translated():
    lm = DictionaryLM()
    mt = MT(PromptedTranslator(lm))
    assert mt.call_batch(["The cat sleeps on the sofa.", "12345 !!", ""], [NO_CONTEXT] * 3) == ["", "", ""]
    assert lm.prompts == []


def test_a_word_langid_cannot_place_is_translated_from_an_undetermined_language():
    lm = DictionaryLM()
    assert MT(PromptedTranslator(lm))("tortuga", NO_CONTEXT) == "turtle"
    assert lm.prompts[0].endswith("Foreign: tortuga\nEnglish:")


def test_batch_translates_in_one_generation_and_keeps_order():
    lm = DictionaryLM()
    mt = MT(PromptedTranslator(lm))
    inputs = ["Der Hund schläft im Garten.", "Plain English text here.", "Le chat dort sur le canapé."]
    assert mt.call_batch(inputs, [NO_CONTEXT] * 3) == [
        "The dog sleeps in the garden.", "", "The cat is sleeping on the sofa."]
    assert len(lm.prompts) == 2


def test_output_is_one_bounded_line():
    class Rambling:
        def translate(self, texts, languages):
            return ["word " * 500 + "\nsecond line" for _ in texts]

    result = MT(Rambling(), max_output_chars=50)("Der Hund schläft im Garten.", NO_CONTEXT)
    assert 0 < len(result) <= 50 and "second" not in result


@pytest.mark.parametrize("text, keep", [
    ("My grandmother always said that patience is a virtue. She would repeat the proverb el que espera "
     "desespera pero al final todo llega a su tiempo whenever I complained about it.", True),
    ("My grandmother always said that patience is a virtue. She repeated it whenever I complained about "
     "waiting for the bus in the rain. It took me years to understand.", False),
    ("Le chat dort sur le canapé pendant que le chien joue dans le jardin avec les enfants du voisin.", False),
    ("The results were 12 34 56 78 90 12 34 56 78 90 12 34 56 78 90 12 34 in the table, we think. "
     "Many numbers indeed and more English words around here.", False),
])
def test_prefilter_wants_a_foreign_chunk_inside_english_text(text, keep):
    assert MT(PromptedTranslator(DictionaryLM())).prefilter(text, NO_CONTEXT) == keep


class EchoLM:
    def generate(self, prompts, max_new_tokens=64, *, stop=None):
        return [p[-60:][::-1] + "\n" + p[:30] for p in prompts]


@pytest.fixture(scope="module")
def loaded_language_model():
    identify_language("loads langid's model, which takes about a second, before anything is timed")


@FUZZ_SETTINGS
@given(text=hostile_text)
def test_fuzz_mt(loaded_language_model, text):
    mt = MT(PromptedTranslator(EchoLM()))
    started = time.perf_counter()
    result = mt(text, NO_CONTEXT)
    assert time.perf_counter() - started < TIME_LIMIT_S
    assert isinstance(result, str) and len(result) <= mt.max_output_chars and "\n" not in result
