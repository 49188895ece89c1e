"""Opening a GGUF file and reading its key/value metadata as plain Python values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np

from jtoolformer.errors import UsageError


def open_gguf(path: Path) -> gguf.GGUFReader:
    """A memory-mapped reader; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    try:
        return gguf.GGUFReader(path)
    except ValueError as error:
        raise UsageError(f"{path}: not a readable GGUF file ({error})") from error


def metadata(reader: gguf.GGUFReader, key: str, default: Any = None) -> Any:
    """The value stored under `key` (a list for arrays), or `default` when the file has none."""
    found = reader.get_field(key)
    if found is None:
        return default
    value = found.contents()
    if found.types[0] == gguf.GGUFValueType.FLOAT32:
        # The shortest decimal that is this float32 (1e-05, not 9.999999747378752e-06).
        value = float(str(np.float32(value)))
    return value


def reader_path(reader: gguf.GGUFReader) -> Path:
    return Path(reader.data.filename)
