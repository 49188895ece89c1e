"""A thin wrapper over an HF `tokenizers.Tokenizer` with the ids the pipeline needs.

Text is always encoded as plain text: a document, prompt or tool result that contains "<|im_end|>"
gets the tokens of those characters, never the control token (which is EOS and padding for SmolLM2).
Control tokens enter a sequence only as ids the code places itself (`bos_id`, `eos_id`, `pad_id`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer


@dataclass(eq=False)
class Tokenizer:
    hf: HFTokenizer
    bos_id: int | None = None
    eos_id: int | None = None
    pad_id: int = 0
    add_bos: bool = False  # whether prompts start with BOS when encoded for generation

    def __post_init__(self) -> None:
        # Special (control) tokens written in the text are split like any other text, also where
        # callers use `hf.encode` for offsets. The setting is not saved with the tokenizer.
        self.hf.encode_special_tokens = True

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` alone, as plain text: no special tokens added or recognised."""
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_prompt(self, text: str) -> list[int]:
        ids = self.encode(text)
        return [self.bos_id] + ids if self.add_bos and self.bos_id is not None else ids

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=False)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_hf_dir(cls, directory: str | Path) -> "Tokenizer":
        directory = Path(directory)
        path = directory / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"no tokenizer.json in {directory}")
        hf = HFTokenizer.from_file(str(path))
        settings = {}
        for name in ("config.json", "tokenizer_config.json"):
            if (directory / name).exists():
                settings.update(json.loads((directory / name).read_text()))

        def token_id(key: str) -> int | None:
            value = settings.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                return hf.token_to_id(value)
            return settings.get(f"{key}_id") if isinstance(settings.get(f"{key}_id"), int) else None

        bos = token_id("bos_token")
        eos = token_id("eos_token")
        pad = token_id("pad_token")
        return cls(hf, bos, eos, pad if pad is not None else (eos or 0), bool(settings.get("add_bos_token", False)))

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.hf.save(str(directory / "tokenizer.json"))
        names = {"bos_token": self.bos_id, "eos_token": self.eos_id, "pad_token": self.pad_id}
        config = {k: self.hf.id_to_token(v) for k, v in names.items() if v is not None}
        config["add_bos_token"] = self.add_bos
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
