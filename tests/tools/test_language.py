import pytest

from jtoolformer.tools.language import UNDETERMINED, flores_code, identify_language, language_name


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


def test_every_language_langid_can_name_has_an_entry():
    from langid.langid import LanguageIdentifier, model

    codes = LanguageIdentifier.from_modelstring(model).nb_classes
    assert all(language_name(code) != code for code in codes)
