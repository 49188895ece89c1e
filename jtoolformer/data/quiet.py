"""TFDS's chatter kept off the terminal.

Opening and building our datasets, TFDS logs through absl ("Using custom data configuration: …",
"Variant folder … has no dataset_info.json"), prints "Downloading and preparing dataset Unknown
size …" and "Dataset … downloaded and prepared" to stdout, and draws nested progress bars whose
descriptions (a full path) wrap in a terminal, so that erasing them leaves half-drawn lines. None of
it is news to a user who gave us a local file; our own messages say what was built and left out.
TFDS's errors still come through.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import tensorflow_datasets as tfds

_TFDS_DIR = str(Path(tfds.__file__).parent)


class _TfdsNotices(logging.Filter):
    """Drops TFDS's absl records below ERROR; absl names the calling file as the record's path."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not record.pathname.startswith(_TFDS_DIR)


def silence_tfds() -> None:
    """Hides TFDS's notices and progress bars for the rest of the process (idempotent)."""
    absl = logging.getLogger("absl")
    if not any(isinstance(f, _TfdsNotices) for f in absl.filters):
        absl.addFilter(_TfdsNotices())
    tfds.display_progress_bar(False)


def prepare(builder: tfds.core.DatasetBuilder) -> None:
    """`builder.download_and_prepare()` without the notices TFDS prints to stdout."""
    silence_tfds()
    with contextlib.redirect_stdout(io.StringIO()):
        builder.download_and_prepare()
