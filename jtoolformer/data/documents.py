"""Reading a local corpus into documents (dicts of str: id, text, url, date), before any TFDS build.

A local corpus is one of:
  - a JSONL file (.jsonl, any case), one JSON object per line: "text" (non-empty string, required),
    "id" (string or integer), "url" (string), "date" ("yyyy-mm-dd"); other keys are ignored, blank
    lines skipped. A line without "id" gets "<file name>:<line number>". Ids must be unique.
  - a folder of .txt files (any case; searched recursively, through linked folders), one UTF-8
    document per file, surrounding whitespace stripped; id = the file's path relative to the folder
    (its name, for a flat folder).
  Both are read as editors read them: a leading UTF-8 byte-order mark is dropped, and lines may end
  in \n, \r\n or \r (in .txt documents all become \n). A bad document (not UTF-8, invalid JSON, a
  lone surrogate, a number or nesting Python cannot parse, no text, bad metadata, a repeated id, a
  file in the folder that is not a readable .txt file) is left out of the build with a warning and
  counted by reason in the dataset's metadata (`CorpusSource.skipped`). A corpus without a document
  is refused.
"""

from __future__ import annotations

import codecs
import collections
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jtoolformer.errors import UsageError

DOCUMENT_KEYS = ("id", "text", "url", "date")

logger = logging.getLogger(__name__)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_SKIP_EXAMPLES = 5


class CorpusError(UsageError):
    """A corpus that cannot be read; the message names the file and line or the spec."""


@dataclasses.dataclass
class Skips:
    """Documents a corpus reader left out, counted by reason, with the first few messages."""

    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    examples: list[str] = dataclasses.field(default_factory=list)

    def add(self, reason: str, message: str) -> None:
        self.counts[reason] += 1
        if len(self.examples) < MAX_SKIP_EXAMPLES:
            self.examples.append(message)


def describe_skips(counts: Mapping[str, int]) -> str:
    """Skip counts by reason, for messages: "2 empty, 1 not_utf8"."""
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))


class _BadDocument(CorpusError):
    """One document a reader cannot use; `reason` names the kind, for counting."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _count_or_raise(skips: Skips | None, error: _BadDocument) -> None:
    """Raises `error` when reading strictly (`skips` None), else counts the document as left out."""
    if skips is None:
        raise error
    skips.add(error.reason, str(error))


def read_jsonl(path: Path, skips: Skips | None = None) -> Iterator[dict[str, str]]:
    """Valid documents of a JSONL corpus, in file order. A bad line raises CorpusError, or is counted
    in `skips` and left out when given."""
    seen: dict[str, int] = {}
    for number, raw in enumerate(_lines(path), start=1):
        try:
            document = _jsonl_document(raw, f"{path}:{number}", f"{path.name}:{number}", seen)
        except _BadDocument as e:
            _count_or_raise(skips, e)
            continue
        if document is not None:
            seen[document["id"]] = number
            yield document


def _lines(path: Path) -> Iterator[bytes]:
    """The file's lines as bytes, each without a leading UTF-8 byte-order mark (files joined by `cat`
    keep theirs); a line ends at \n, \r\n or a lone \r. (Latin-1 maps bytes to characters one to one,
    so the text layer only finds the line ends; no UTF-8 character holds the bytes of \r or \n.)"""
    with path.open("r", encoding="latin-1", newline=None) as text:
        for number, line in enumerate(text):
            raw = line.encode("latin-1")
            if number == 0 and _is_utf16(raw):
                raise CorpusError(f"{path}: {_UTF16}")
            yield raw.removeprefix(codecs.BOM_UTF8)


_UTF16 = "the file starts with a UTF-16 (or UTF-32) byte-order mark; re-encode the file as UTF-8"


def _is_utf16(head: bytes) -> bool:
    return head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def _jsonl_document(raw: bytes, where: str, default_id: str, seen: Mapping[str, int]) -> dict[str, str] | None:
    """The document on one JSONL line (None for a blank line); ids in `seen` are taken."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _BadDocument("not_utf8", f"{where}: not valid UTF-8 (byte {e.start} of the line); re-encode the "
                                       "file as UTF-8") from None
    if not line.strip():
        return None
    document = _document_from_json(_parse_json(line, where), where, default_id)
    if document["id"] in seen:
        raise _BadDocument("duplicate_id", f"{where}: id {document['id']!r} already used on line "
                                           f"{seen[document['id']]}; ids must be unique")
    for key, value in document.items():
        _require_encodable(value, key, where)
    return document


def _parse_json(line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise _BadDocument("invalid_json", f"{where}: invalid JSON ({e.msg}, column {e.colno}); each line must "
                                           "be one JSON object") from None
    except ValueError as e:  # the only other ValueError of json.loads: int() refusing a huge literal
        raise _BadDocument("number_too_long", f"{where}: holds an integer of more than "
                                              f"{sys.get_int_max_str_digits()} digits, which Python will not "
                                              f"parse ({str(e).split(':')[0]})") from None
    except RecursionError:
        raise _BadDocument("too_deep", f"{where}: arrays or objects nested too deeply for Python's JSON "
                                       "parser") from None


def _require_encodable(value: str, key: str, where: str) -> None:
    """JSON escapes can spell half a surrogate pair, which no UTF-8 text (and so no TFDS record) holds."""
    if not _is_encodable(value):
        at = next(i for i, c in enumerate(value) if "\ud800" <= c <= "\udfff")
        raise _BadDocument("lone_surrogate", f"{where}: {key!r} holds a lone surrogate \\u{ord(value[at]):04x} "
                                             f"at character {at}, which is not text")


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _document_from_json(record: Any, where: str, default_id: str) -> dict[str, str]:
    if not isinstance(record, dict):
        raise _BadDocument("invalid_json", f"{where}: expected a JSON object with a 'text' field, got "
                                           f"{type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        problem = "has no 'text' field" if text is None else "has a 'text' that is not a non-empty string"
        raise _BadDocument("empty", f"{where}: the document {problem}; give every line a non-empty \"text\"")
    document = {"id": default_id, "text": text, "url": "", "date": ""}
    for key, allowed in (("id", (str, int)), ("url", (str,)), ("date", (str,))):
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, allowed) or value == "":
            kinds = " or ".join(t.__name__ for t in allowed)
            raise _BadDocument("bad_metadata", f"{where}: {key!r} must be a non-empty {kinds}, got {value!r}")
        document[key] = str(value)
    if document["date"] and not _is_date(document["date"]):
        raise _BadDocument("bad_metadata", f"{where}: 'date' must be a real date written yyyy-mm-dd, got "
                                           f"{document['date']!r}")
    return document


def _is_date(value: str) -> bool:
    try:
        return _DATE.fullmatch(value) is not None and datetime.date.fromisoformat(value) is not None
    except ValueError:
        return False


def read_txt_folder(folder: Path, skips: Skips | None = None) -> Iterator[dict[str, str]]:
    """Valid documents of a folder of .txt files, in sorted path order. A bad file (or any file that is
    not a .txt document) raises CorpusError, or is counted in `skips` and left out when given."""
    files = _folder_files(folder)
    if not any(_is_txt(path) for path in files):
        jsonl = [path.name for path in files if is_jsonl(path)]
        hint = f" (a JSONL corpus is given as its file, e.g. {folder / jsonl[0]})" if jsonl else ""
        raise CorpusError(f"{folder}: no .txt files found; put one document per .txt file in the folder{hint}")
    for path in files:
        try:
            document = _txt_document(path, folder)
        except _BadDocument as e:
            _count_or_raise(skips, e)
            continue
        yield document


def _txt_document(path: Path, folder: Path) -> dict[str, str]:
    if not _is_encodable(str(path)):  # os.walk spells the bytes of a name that is not UTF-8 as surrogates
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise _BadDocument("bad_file_name", f"{shown}: the file name is not UTF-8; rename the file")
    if path.is_dir():  # a folder _folder_files could not list
        raise _BadDocument("unreadable", f"{path}: a folder that cannot be listed; its files are left out")
    if not _is_txt(path):
        raise _BadDocument("not_txt", f"{path}: not a .txt file; rename it to .txt to make it a document")
    if not path.exists():
        raise _BadDocument("unreadable", f"{path}: broken symbolic link to {os.readlink(path)}")
    if not path.is_file():  # a pipe or a device: reading it could wait forever or never end
        raise _BadDocument("unreadable", f"{path}: not a regular file")
    try:
        content = path.read_bytes()
    except OSError as e:
        raise _BadDocument("unreadable", f"{path}: cannot be read ({e.strerror})") from None
    if _is_utf16(content):
        raise _BadDocument("not_utf8", f"{path}: {_UTF16}")
    content = content.removeprefix(codecs.BOM_UTF8).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    try:
        text = content.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        line = content[: e.start].count(b"\n") + 1
        raise _BadDocument("not_utf8", f"{path}:{line}: not valid UTF-8; re-encode the file as UTF-8") from None
    if not text:
        raise _BadDocument("empty", f"{path}:1: empty document; remove the file or give it text")
    return {"id": path.relative_to(folder).as_posix(), "text": text, "url": "", "date": ""}


def _is_txt(path: Path) -> bool:
    return path.suffix.lower() == ".txt"


def _folder_files(folder: Path) -> list[Path]:
    """Everything under `folder` but folders, and the folders that cannot be listed, sorted. Linked
    folders are followed, but each real folder is read once (a link loop ends there): through the first
    name reached, in order of names, with real subfolders before links at each level."""
    files, visited = [], set()
    for root, folders, names in os.walk(folder, followlinks=True, onerror=lambda e: files.append(Path(e.filename))):
        real = os.path.realpath(root)
        if real in visited:
            folders.clear()
            continue
        visited.add(real)
        folders.sort(key=lambda name: (os.path.islink(os.path.join(root, name)), name))
        files.extend(Path(root) / name for name in names)
    return sorted(files)


def read_documents(source: Path, skips: Skips | None = None) -> Iterator[dict[str, str]]:
    """Valid documents of a local corpus (JSONL file or folder of .txt files); see read_jsonl."""
    if source.is_dir():
        return read_txt_folder(source, skips)
    if is_jsonl(source):
        return read_jsonl(source, skips)
    raise CorpusError(f"{source}: expected a .jsonl file or a folder of .txt files")


def is_jsonl(source: Path) -> bool:
    return source.is_file() and source.suffix.lower() == ".jsonl"


def source_fingerprint(source: Path) -> str:
    """SHA-256 of the corpus content (for a folder: every file's relative path, and each readable .txt
    file's content)."""
    if not source.is_dir():
        with source.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    digest = hashlib.sha256()
    for path in _folder_files(source):
        digest.update(os.fsencode(path.relative_to(source)) + b"\0")
        if _is_txt(path) and path.is_file():
            try:
                with path.open("rb") as f:
                    digest.update(hashlib.file_digest(f, "sha256").digest())
            except OSError:
                digest.update(b"unreadable")
    return digest.hexdigest()
