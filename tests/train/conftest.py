import numpy as np
import pytest

from jtoolformer.models import load_model_config
from jtoolformer.train.text_batches import batches_of, pack_rows

TINY = "configs/gptj_tiny.yaml"


def pattern_texts(n: int, seed: int, vocab: int = 64) -> list[list[int]]:
    """Texts a tiny model can learn: arithmetic progressions mod `vocab`, lengths 8..40."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        start, stride, length = rng.integers(0, vocab), rng.integers(1, 5), rng.integers(8, 41)
        texts.append([int(t) for t in (start + stride * np.arange(length)) % vocab])
    return texts


def make_batches(n_texts: int, seed: int, seq_len: int = 64, batch: int = 8) -> list[dict[str, np.ndarray]]:
    return batches_of(pack_rows(pattern_texts(n_texts, seed), seq_len), batch)


@pytest.fixture(scope="session")
def tiny_cfg():
    return load_model_config(TINY)
