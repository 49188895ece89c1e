"""Every config field has a valid range: a value outside it is a one-line error naming the field."""

import dataclasses
import math
import re
import typing

import pytest

from jtoolformer import config
from jtoolformer.annotate.pipeline import AnnotateConfig
from jtoolformer.errors import UsageError
from jtoolformer.generate.sampling import Sampling
from jtoolformer.models import ModelConfig
from jtoolformer.train.config import CheckpointConfig, DataConfig, MeshConfig, OptimConfig, TrainConfig

TINY_MODEL = dict(arch="llama", vocab_size=64, d_model=16, n_layers=1, n_heads=2)
CONFIGS = [(AnnotateConfig, {}), (TrainConfig, {}), (MeshConfig, {}), (OptimConfig, {}), (CheckpointConfig, {}),
           (DataConfig, {}), (Sampling, {}), (ModelConfig, TINY_MODEL)]


@pytest.mark.parametrize(("cls", "override", "message"), [
    (AnnotateConfig, "batch_docs=-1", r"batch_docs=-1 must be an integer >= 1"),
    (AnnotateConfig, "shard_size=-1", r"shard_size=-1 must be an integer >= 1"),
    (AnnotateConfig, "temperature=-1", r"temperature=-1 must be a finite number > 0"),
    (AnnotateConfig, "filter_threshold=nan", r"filter_threshold=nan must be a finite number"),
    (AnnotateConfig, "filter_threshold=.nan", r"filter_threshold=nan must be a finite number"),
    (AnnotateConfig, "max_rows=2.5", r"max_rows=2.5 must be an integer"),
    (TrainConfig, "optim.learning_rate=nan", r"optim.learning_rate=nan must be a finite number > 0"),
    (TrainConfig, "optim.learning_rate=-1", r"optim.learning_rate=-1 must be a finite number > 0"),
    (TrainConfig, "optim.learning_rate=1e999", r"optim.learning_rate=inf must be a finite number > 0"),
    (TrainConfig, "optim.b1=5", r"optim.b1=5 must be a finite number >= 0 and < 1"),
    (TrainConfig, "optim.b2=1", r"optim.b2=1 must be a finite number >= 0 and < 1"),
    (TrainConfig, "optim.mu_dtype=float64", r"optim.mu_dtype='float64' must be one of \('float32', 'bfloat16'\)"),
    (TrainConfig, "checkpoint.save_every=0", r"checkpoint.save_every=0 must be an integer >= 1"),
    (TrainConfig, "remat=yes please", r"remat='yes please' must be true or false"),
    (TrainConfig, "peak_tflops_per_device=-3", r"peak_tflops_per_device=-3 must be a finite number > 0"),
    (TrainConfig, "seq_len=1", r"seq_len=1 must be an integer >= 2"),
    (TrainConfig, "seed=-1", r"seed=-1 must be an integer >= 0 and < 4294967296"),
])
def test_an_out_of_range_value_is_one_line_naming_the_field(cls, override, message):
    with pytest.raises(UsageError, match=rf"^overrides: {message}$") as error:
        config.load(cls, None, [override])
    assert "\n" not in str(error.value)


def numeric_fields():
    for cls, required in CONFIGS:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            kinds = typing.get_args(hints[field.name]) or (hints[field.name],)
            if int in kinds and bool not in kinds:
                yield pytest.param(cls, required, field.name, -10**9, id=f"{cls.__name__}.{field.name}=-1e9")
            if float in kinds:
                for bad in (math.nan, math.inf, -math.inf):
                    yield pytest.param(cls, required, field.name, bad, id=f"{cls.__name__}.{field.name}={bad}")


@pytest.mark.parametrize(("cls", "required", "name", "value"), list(numeric_fields()))
def test_every_numeric_field_has_a_range(cls, required, name, value):
    """No field takes NaN, an infinity or a huge negative number unnoticed, built from YAML or in Python."""
    with pytest.raises(UsageError, match=rf"^{name}={value!r} (must|is|but)"):
        cls(**{**required, name: value})


def test_good_values_pass():
    cfg = config.load(TrainConfig, None, ["optim.learning_rate=1e-4", "optim.b1=0", "peak_tflops_per_device=2"])
    assert (cfg.optim.learning_rate, cfg.optim.b1, cfg.peak_tflops_per_device) == (1e-4, 0, 2)
    assert AnnotateConfig(filter_threshold=-0.5).filter_threshold == -0.5  # τ_f may be negative


@pytest.mark.parametrize(("override", "message"), [
    ("batch_docs", r"override 'batch_docs' is not of the form key=value"),
    ("=3", r"override '=3' is not of the form key=value"),
    ("tools=[unclosed", r"override 'tools=\[unclosed': the value is not valid YAML"),
    ("nothing=1", r"overrides: unknown AnnotateConfig keys \['nothing'\]"),
    ("batch_docs.x=1", r"overrides: batch_docs: expected a mapping|batch_docs=\{'x': 1\} must be an integer"),
])
def test_malformed_overrides_are_named(override, message):
    with pytest.raises(UsageError, match=message):
        config.load(AnnotateConfig, None, [override])


@pytest.mark.parametrize(("content", "message"), [
    (None, r"cannot read the config"),
    ("batch_docs: [1\n", r"not valid YAML"),
    ("- 1\n- 2\n", r"expected a mapping of AnnotateConfig keys, got \[1, 2\]"),
    ("batch_docs: 0\n", r"batch_docs=0 must be an integer >= 1"),
])
def test_config_file_problems_name_the_file(tmp_path, content, message):
    path = tmp_path / "annotate.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=rf"^{path}: .*{message}"):
        config.load(AnnotateConfig, path, [])


@pytest.mark.parametrize(("override", "message"), [
    ("steps=" + "1" * 5000, "not valid YAML (Exceeds the limit (4300 digits)"),
    ("steps=" + "[" * 100_000, "not valid YAML (maximum recursion depth exceeded"),
    ("seed=4294967296", "seed=4294967296 must be an integer >= 0 and < 4294967296"),
    ("optim.learning_rate.x=1", "optim.learning_rate={'x': 1} must be a number"),
    ("mesh.data=-1.0", "mesh.data=-1.0 must be an integer"),
    ("optim.eps=" + "9" * 400, "optim.eps=" + "9" * 400 + " must be a finite number > 0"),  # beyond float
])
def test_hostile_override_values_are_usage_errors(override, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        config.load(TrainConfig, None, [override])
