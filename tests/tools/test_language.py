import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langid.langid import LanguageIdentifier, model

from jtoolformer.tools.language import UNDETERMINED, flores_code, identify_language, language_name

DENSE = LanguageIdentifier.from_modelstring(model, norm_probs=True)  # langid as shipped


@pytest.mark.parametrize("text, code", [
    ("Le chat dort sur le canapé.", "fr"),
    ("Der Hund schläft im Garten.", "de"),
    ("El perro come carne todos los días.", "es"),
    ("The cat sleeps on the sofa.", "en"),
])
def test_identify_language(text, code):
    guess = identify_language(text)
    assert guess.code == code and guess.confidence > 0.9


def test_names_and_nllb_codes():
    assert language_name("fr") == "French" and flores_code("fr") == "fra_Latn"
    assert language_name("zh") == "Chinese" and flores_code("zh") == "zho_Hans"
    assert language_name(UNDETERMINED) == "Foreign" and flores_code(UNDETERMINED) is None
    assert language_name("xx") == "xx" and flores_code("xx") is None
    assert flores_code("la") is None  # NLLB has no Latin


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.sampled_from(["Le chat dort.", "Der Hund schläft.", "El perro come.", "日本語"]))
def test_sparse_scoring_agrees_with_langids_own(text):
    expected_code, expected_confidence = DENSE.classify(text)
    guess = identify_language(text)
    assert guess.code == expected_code and guess.confidence == pytest.approx(expected_confidence, abs=1e-6)


def test_every_language_langid_can_name_has_an_entry():
    codes = DENSE.nb_classes
    assert all(language_name(code) != code for code in codes)
