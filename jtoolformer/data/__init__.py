"""Corpora as TFDS datasets, packing of tokenised texts into rows, and the grain training pipeline."""
