"""Text corpora as TFDS datasets (array_record, no TensorFlow) with random access for grain.

A local corpus is read by documents.py (a JSONL file or a folder of .txt files).

`open_corpus(spec)` takes either
  - a path to such a corpus: built on first use into `data_dir` as `local_corpus/<name>`, reused
    after, rebuilt when the source's content changes; or
  - a TFDS dataset already prepared as array_record in `data_dir`: NAME[/CONFIG][:VERSION][@SPLIT][#FIELD]
    (split "train" and field "text" unless given), e.g. "wikipedia/20230601.en@train[:1%]#text".
Documents come back as dicts of str with keys id, text, url, date (empty strings where unknown).
For a TFDS dataset, id/url/date are copied from string features of those names when it has them;
otherwise the id is the document's index in the opened split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import jax
import tensorflow_datasets as tfds

from jtoolformer.data.documents import (DOCUMENT_KEYS, CorpusError, Skips, describe_skips, is_jsonl, read_documents,
                                        source_fingerprint)
from jtoolformer.data.quiet import prepare, silence_tfds
from jtoolformer.sharding import sync_hosts

DEMO_CORPUS = Path(__file__).parent / "corpus" / "demo.jsonl"

logger = logging.getLogger(__name__)
silence_tfds()

_CONFIG_NAME = re.compile(r"[\w.+-]+")
_FINGERPRINT_KEY = "source_sha256"
_SKIPPED_KEY = "skipped"


@dataclasses.dataclass(eq=False)
class CorpusConfig(tfds.core.BuilderConfig):
    source: str = ""
    fingerprint: str = ""


class LocalCorpus(tfds.core.GeneratorBasedBuilder):
    """A local JSONL file or .txt folder as a TFDS dataset with one split, "train", in source order."""

    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {"1.1.0": "bad documents left out and counted in metadata['skipped']",
                     "1.2.0": "byte-order marks, \\r line ends, .TXT names and linked folders read"}

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"Local corpus built from {config.source}",
            features=tfds.features.FeaturesDict({key: tfds.features.Text() for key in DOCUMENT_KEYS}),
            # Replaced by the stored value when an existing build is opened; compared in build_corpus.
            metadata=tfds.core.MetadataDict({_FINGERPRINT_KEY: config.fingerprint}),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        return {"train": self._generate_examples(Path(self.builder_config.source))}

    def _generate_examples(self, source: Path) -> Iterator[tuple[str, dict[str, str]]]:
        skips, kept = Skips(), 0
        for document in read_documents(source, skips):
            kept += 1
            yield document["id"], document
        if not kept and not skips.counts:
            raise CorpusError(f"{source}: no documents; the corpus is empty")
        if skips.counts:
            summary = (f"{source}: left out {skips.counts.total()} bad documents "
                       f"({describe_skips(skips.counts)}); first: " + " | ".join(skips.examples))
            if not kept:
                raise CorpusError(f"no valid document in {summary}")
            logger.warning("%s", summary)
        # Written with the dataset info after the split, so a reused build still reports them.
        self.info.metadata[_SKIPPED_KEY] = {"counts": dict(skips.counts), "examples": skips.examples}


def default_name(source: Path) -> str:
    """`<file stem>-<hash of the absolute path>`: readable, and distinct for same-named files."""
    stem = re.sub(r"[^\w.+-]", "_", source.stem) or "corpus"
    return f"{stem}-{hashlib.sha256(str(source).encode()).hexdigest()[:8]}"


def build_corpus(source: str | Path, data_dir: str | Path | None, name: str | None = None) -> LocalCorpus:
    """Builds (or reuses, when the source is unchanged) the TFDS dataset of a local corpus. On several
    hosts sharing `data_dir`, host 0 builds it while the others wait, then they open it."""
    source = Path(source).expanduser().resolve()
    if not (source.is_dir() or is_jsonl(source)):
        raise CorpusError(f"{source}: expected an existing .jsonl file or a folder of .txt files")
    name = name or default_name(source)
    if not _CONFIG_NAME.fullmatch(name):
        raise CorpusError(f"corpus name {name!r} may only hold letters, digits and _ . + -")
    config = CorpusConfig(name=name, source=str(source), fingerprint=source_fingerprint(source))
    if jax.process_index() == 0:
        corpus = _prepared(config, data_dir)
    sync_hosts(f"corpus {name} prepared")
    return corpus if jax.process_index() == 0 else _prepared(config, data_dir)


def _prepared(config: CorpusConfig, data_dir: str | Path | None) -> LocalCorpus:
    """The TFDS build of `config`, made now unless one of the same source fingerprint exists."""

    def builder() -> LocalCorpus:
        return LocalCorpus(config=config, data_dir=data_dir, file_format="array_record")

    corpus = builder()
    if corpus.is_prepared():
        if corpus.info.metadata.get(_FINGERPRINT_KEY) == config.fingerprint:
            return corpus
        shutil.rmtree(corpus.data_dir)
        corpus = builder()
    prepare(corpus)
    return corpus


class CorpusSource(Sequence[dict[str, str]]):
    """Random access to the documents of a TFDS split, as dicts of str (see DOCUMENT_KEYS);
    `skipped` counts by reason the bad documents a local corpus's build left out. A slice is a view
    of the same split: nothing is read until a document is asked for."""

    def __init__(self, records: Sequence[dict[str, Any]], field: str, origin: str,
                 skipped: Mapping[str, int] | None = None, rows: range | None = None):
        self._records = records
        self._field = field
        self._origin = origin
        self._rows = range(len(records)) if rows is None else rows
        self.skipped = dict(skipped or {})

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> dict[str, str]: ...
    @overload
    def __getitem__(self, index: slice) -> CorpusSource: ...
    def __getitem__(self, index: int | slice) -> dict[str, str] | CorpusSource:
        if isinstance(index, slice):
            return CorpusSource(self._records, self._field, self._origin, self.skipped, self._rows[index])
        row = self._rows[index]
        return self._document(self._records[row], row)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, str]]:
        rows = [self._rows[i] for i in indices]
        records = self._records.__getitems__(rows)
        return [self._document(r, i) for r, i in zip(records, rows, strict=True)]

    def _document(self, record: dict[str, Any], index: int) -> dict[str, str]:
        document = {"id": str(index), "text": record[self._field], "url": "", "date": ""}
        if not isinstance(document["text"], (bytes, str)):
            raise CorpusError(
                f"{self._origin}: document {index}: field {self._field!r} is not text; name a text field after '#'"
            )
        for key in ("id", "url", "date"):
            if isinstance(record.get(key), (bytes, str)):
                document[key] = record[key]
        return {key: _as_str(value) for key, value in document.items()}


def _as_str(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def parse_tfds_spec(spec: str) -> tuple[str, str, str]:
    """NAME[/CONFIG][:VERSION][@SPLIT][#FIELD] -> (name, split, field)."""
    rest, _, field = spec.partition("#")
    name, _, split = rest.partition("@")
    if not tfds.core.naming.is_valid_dataset_name(name):
        raise CorpusError(
            f"{spec!r} is neither an existing file or folder nor a TFDS spec "
            "NAME[/CONFIG][:VERSION][@SPLIT][#FIELD]"
        )
    return name, split or "train", field or "text"


def open_corpus(spec: str | Path, data_dir: str | Path | None = None) -> CorpusSource:
    """The documents of a local corpus path or of a prepared TFDS dataset (see the module docstring)."""
    path = Path(spec).expanduser()
    if path.exists():
        corpus = build_corpus(path, data_dir)
        skipped = corpus.info.metadata.get(_SKIPPED_KEY, {}).get("counts", {})
        return CorpusSource(corpus.as_data_source("train"), "text", str(path), skipped)
    spec = str(spec)
    name, split, field = parse_tfds_spec(spec)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
    except Exception as e:
        builder, prepared, cause = None, False, e
    try:
        records = builder.as_data_source(split) if prepared else None
    except Exception as e:
        splits = ", ".join(sorted(builder.info.splits))
        raise CorpusError(f"{spec!r}: cannot read split {split!r} of {name} ({_first_line(e)}); its splits are "
                          f"{splits} (a slice like train[:10%] may follow; TFDS reads only array_record "
                          "datasets by random access)") from e
    if records is None:
        raise CorpusError(
            f"{spec!r} is neither an existing file or folder nor a TFDS dataset prepared in "
            f"{data_dir or 'the default TFDS data dir'}{f' ({_first_line(cause)})' if builder is None else ''}; "
            f"give a corpus path, or prepare {name} there with file_format='array_record' (random access needs it)"
        )
    features = builder.info.features.keys()
    if field not in features:
        raise CorpusError(
            f"{spec!r}: dataset {name} has no field {field!r}; its fields are {sorted(features)}; name one after '#'"
        )
    return CorpusSource(records, field, spec)
