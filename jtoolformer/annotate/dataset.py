"""C* as a TFDS dataset (array_record, readable without TensorFlow), built from the finished shards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import tensorflow_datasets as tfds

from jtoolformer.data.quiet import prepare, silence_tfds

C_STAR_KEYS = ("id", "text", "original", "url", "date", "calls")
silence_tfds()


class AugmentedCorpus(tfds.core.GeneratorBasedBuilder):
    """One example per document with at least one kept call; `calls` is a JSON list of call records
    (tool, input, result, token_position, char_position, call, loss_plus, loss_minus)."""

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, shards: list[Path] | None = None, **kwargs):
        self._shards = shards or []
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Toolformer's augmented dataset C*",
            features=tfds.features.FeaturesDict({key: tfds.features.Text() for key in C_STAR_KEYS}),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager) -> dict[str, Iterator]:
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[str, dict[str, str]]]:
        for shard in self._shards:
            for line in shard.read_text().splitlines():
                record = json.loads(line)
                yield record["id"], {**{k: record[k] for k in C_STAR_KEYS[:-1]}, "calls": json.dumps(record["calls"])}


def build_c_star(shards: list[Path], data_dir: Path) -> AugmentedCorpus:
    builder = AugmentedCorpus(shards=shards, data_dir=data_dir, file_format="array_record")
    prepare(builder)
    return builder


def open_c_star(data_dir: str | Path):
    """Random access to C*: dicts with the C_STAR_KEYS (calls still JSON text)."""
    return AugmentedCorpus(data_dir=Path(data_dir), file_format="array_record").as_data_source("train")
