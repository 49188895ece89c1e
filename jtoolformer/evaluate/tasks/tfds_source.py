"""Reading a prepared TFDS dataset without TensorFlow (array_record files, random access)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _decoded(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        return {key: _decoded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        return [_decoded(item) for item in list(value)]
    return value


def tfds_records(
    name: str, split: str, tfds_data_dir: Path | None
) -> Iterator[dict[str, Any]] | None:
    """The records of ``name``'s ``split`` (text decoded to str), or None when the TFDS data dir
    (None: TFDS's default) does not hold a prepared copy."""
    import tensorflow_datasets as tfds  # slow to import; only QA tasks need it

    try:
        builder = tfds.builder(name, data_dir=tfds_data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        return None
    if not builder.is_prepared():
        return None
    if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
        raise ValueError(
            f"TFDS dataset {name} in {builder.data_dir} is stored as "
            f"{builder.info.file_format.value}; reading it without TensorFlow needs array_record: "
            "rebuild it with "
            f"`tfds build {name} --file_format=array_record`."
        )
    source = builder.as_data_source(split)
    return (_decoded(source[i]) for i in range(len(source)))
