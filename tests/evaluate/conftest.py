from pathlib import Path

import pytest

from jtoolformer.evaluate.tasks import DataSources

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def sources(tmp_path: Path) -> DataSources:
    """The fixture releases, and an empty TFDS data dir so that no user's TFDS data leaks in."""
    empty = tmp_path / "tfds"
    empty.mkdir()
    return DataSources(FIXTURES, empty)
