"""MT: identify the language with langid, translate into English with a configurable backend.

Backends: `PromptedTranslator` (any TextGenerator, the default) and `Seq2SeqTranslator` (a local
Hugging Face seq2seq directory such as NLLB or Marian; transformers is imported only when it is used).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from jtoolformer.tools.base import RARE_CALL_SAMPLING, PromptedTool, TextGenerator, ToolContext, generate_checked
from jtoolformer.tools.language import (
    ENGLISH,
    UNDETERMINED,
    flores_code,
    has_foreign_chunk,
    has_letters,
    identify_language,
    language_name,
)
from jtoolformer.tools.text import clean_and_shorten, fill_template, first_line, package_text

NLLB_ENGLISH = "eng_Latn"


class Translator(Protocol):
    def translate(self, texts: Sequence[str], languages: Sequence[str]) -> list[str]:
        """English translations of `texts`, whose languages (ISO 639-1 codes) are given."""
        ...


class PromptedTranslator:
    """Translation by prompting a language model with `templates/translate.txt`."""

    def __init__(self, generator: TextGenerator, *, max_new_tokens: int = 96):
        self.generator, self.max_new_tokens = generator, max_new_tokens

    def translate(self, texts: Sequence[str], languages: Sequence[str]) -> list[str]:
        template = package_text("templates", "translate.txt").rstrip()
        prompts = [fill_template(template, language=language_name(language), text=text)
                   for text, language in zip(texts, languages, strict=True)]
        return generate_checked(self.generator, prompts, self.max_new_tokens, ["\n"])


class Seq2SeqTranslator:
    """A local Hugging Face seq2seq model, loaded on first use. For NLLB-style models (whose vocabulary
    has FLORES-200 language tokens) the source language is set and English is forced as the target."""

    def __init__(self, model_dir: str | Path, *, max_new_tokens: int = 128, max_input_tokens: int = 256):
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"no model directory at {self.model_dir}")
        self.max_new_tokens, self.max_input_tokens = max_new_tokens, max_input_tokens
        self._lock = threading.Lock()  # the tokenizer's source language is state shared by calls
        self._tokenizer: Any = None
        self._model: Any = None

    def _load(self) -> None:
        try:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        except ImportError as error:
            raise ImportError("Seq2SeqTranslator needs transformers and torch: "
                              "pip install transformers torch") from error
        # Text is text: "</s>" or "fra_Latn" written in it are not the control tokens.
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir, split_special_tokens=True)
        self._model = AutoModelForSeq2SeqLM.from_pretrained(self.model_dir).eval()

    def translate(self, texts: Sequence[str], languages: Sequence[str]) -> list[str]:
        import torch

        with self._lock:
            if self._model is None:
                self._load()
            english_id = self._tokenizer.convert_tokens_to_ids(NLLB_ENGLISH)
            is_nllb = english_id is not None and english_id != self._tokenizer.unk_token_id
            translations = [""] * len(texts)
            for language in dict.fromkeys(languages):
                rows = [i for i, lang in enumerate(languages) if lang == language]
                options = {}
                if is_nllb:
                    self._tokenizer.src_lang = flores_code(language) or NLLB_ENGLISH
                    options["forced_bos_token_id"] = english_id
                batch = self._tokenizer([texts[i] for i in rows], return_tensors="pt", padding=True,
                                        truncation=True, max_length=self.max_input_tokens)
                with torch.no_grad():
                    ids = self._model.generate(**batch, max_new_tokens=self.max_new_tokens, **options)
                for i, text in zip(rows, self._tokenizer.batch_decode(ids, skip_special_tokens=True), strict=True):
                    translations[i] = text
            return translations


class MT(PromptedTool):
    name = "MT"
    prompt_name = "mt"
    quoted_input = True
    sampling = RARE_CALL_SAMPLING

    def __init__(self, translator: Translator, *, max_input_chars: int = 500, max_output_chars: int = 500,
                 english_confidence: float = 0.5):
        self.translator = translator
        self.max_input_chars, self.max_output_chars = max_input_chars, max_output_chars
        self.english_confidence = english_confidence

    def source_language(self, text: str) -> str | None:
        """None when there is nothing to translate (no letters, or English with confidence ≥
        `english_confidence`); else langid's language code, or UNDETERMINED where langid has no idea
        (single rare words such as "tortuga" get its uninformed English guess)."""
        if not has_letters(text):
            return None
        guess = identify_language(text)
        if guess.code != ENGLISH:
            return guess.code
        return None if guess.confidence >= self.english_confidence else UNDETERMINED

    def prefilter(self, text: str, context: ToolContext) -> bool:
        return has_foreign_chunk(text)

    def __call__(self, input: str, context: ToolContext) -> str:
        return self.call_batch([input], [context])[0]

    def call_batch(self, inputs: Sequence[str], contexts: Sequence[ToolContext]) -> list[str]:
        """"" for text that is English or has no letters; the rest goes to the translator at once."""
        texts = [clean_and_shorten(text, self.max_input_chars) for text in inputs]
        foreign = {i: language for i, text in enumerate(texts) if (language := self.source_language(text))}
        results = [""] * len(texts)
        if foreign:
            rows = list(foreign)
            translated = self.translator.translate([texts[i] for i in rows], [foreign[i] for i in rows])
            for i, translation in zip(rows, translated, strict=True):
                results[i] = clean_and_shorten(first_line(translation), self.max_output_chars)
        return results
