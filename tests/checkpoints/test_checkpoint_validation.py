"""A corrupt checkpoint is refused at load with the file and what is wrong, never loaded as something else."""

import json
import shutil
import struct

import jax
import numpy as np
import pytest
from tokenizers import Tokenizer, models

from jtoolformer.checkpoints.hf import save_hf
from jtoolformer.errors import UsageError
from jtoolformer.lm import load_model
from jtoolformer.sharding import make_mesh

Q0, Q1 = "transformer.h.0.attn.q_proj.weight", "transformer.h.1.attn.q_proj.weight"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    lm = load_model("configs/gptj_tiny.yaml", seed=3)
    directory = tmp_path_factory.mktemp("tiny")
    save_hf(lm.params, lm.config, directory)
    return directory


@pytest.fixture
def copy(saved, tmp_path):
    shutil.copytree(saved, tmp_path, dirs_exist_ok=True)
    return tmp_path


def load(directory):
    return load_model(directory, mesh=make_mesh(devices=jax.devices()[:1]))


def split(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join(path, header, body):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def test_a_tensor_pointing_at_another_tensors_bytes_is_refused_by_name(copy):
    """The probe's case: layer 0's q_proj reads layer 1's bytes, and the model loaded with two equal layers."""
    weights = copy / "model.safetensors"
    header, body = split(weights)
    header[Q0]["data_offsets"] = header[Q1]["data_offsets"]
    join(weights, header, body)
    with pytest.raises(UsageError, match=rf"^{weights}: tensor transformer\.h\.(0|1)\.attn\.q_proj\.weight overlaps "
                                         r"tensor transformer\.h\.(0|1)\.attn\.q_proj\.weight"):
        load(copy)


def shift(header, name, by):
    begin, end = header[name]["data_offsets"]
    return [begin + by, end + by]


@pytest.mark.parametrize(("corrupt", "message"), [
    (lambda h, body: ({**h, Q0: {**h[Q0], "data_offsets": shift(h, Q0, 4)}}, body), rf"overlaps tensor {Q0}"),
    (lambda h, body: ({**h, Q0: {**h[Q0], "dtype": "F16"}}, body), rf"tensor {Q0}: data_offsets \[\d+, \d+\] hold 16384 bytes, but shape \[64, 64\] of F16 needs 8192"),
    (lambda h, body: ({**h, Q0: {**h[Q0], "shape": [64, 32]}}, body), rf"tensor {Q0}: data_offsets .* needs 8192"),
    (lambda h, body: (h, body[:-4]), r"end past the \d+ bytes of data after the header; the file is truncated"),
    (lambda h, body: ({**h, Q0: {**h[Q0], "dtype": "F8_E9M9"}}, body), rf"tensor {Q0}: unknown dtype 'F8_E9M9'"),
    (lambda h, body: ({**h, Q0: {**h[Q0], "dtype": "I32"}}, body), rf"tensor {Q0} is not stored as floating point"),
    (lambda h, body: ({**h, Q0: {**h[Q0], "shape": [-64, -64]}}, body), r"shape \[-64, -64\] is not a list of sizes >= 0"),
    (lambda h, body: ({**h, Q0: {**h[Q0], "shape": "64x64"}}, body), r"shape '64x64' is not a list"),
    (lambda h, body: ({**h, Q0: {**h[Q0], "data_offsets": h[Q0]["data_offsets"][::-1]}}, body), r"not \[begin, end\]"),
    (lambda h, body: ({**h, Q0: {**h[Q0], "data_offsets": [0, 16384.0]}}, body), r"not \[begin, end\]"),
    (lambda h, body: ({**h, Q0: None}, body), rf"tensor {Q0}: expected an object"),
    (lambda h, body: ([1, 2], body), r"header is a JSON list, not an object"),
])
def test_a_corrupt_safetensors_header_is_refused_with_the_tensor_and_the_problem(copy, corrupt, message):
    weights = copy / "model.safetensors"
    join(weights, *corrupt(*split(weights)))
    with pytest.raises(UsageError, match=rf"^{weights}: .*({message})"):
        load(copy)


@pytest.mark.parametrize(("content", "message"), [
    (b"", r"0 bytes, too short for a safetensors file"),
    (b"\x01\x02\x03", r"3 bytes, too short"),
    (np.random.default_rng(0).bytes(4096), r"header of \d+ bytes, more than the file's 4096"),
    (struct.pack("<Q", 100) + np.random.default_rng(1).bytes(200), r"the safetensors header: not valid JSON"),
    (struct.pack("<Q", 5010) + b'{"n": ' + b"1" * 5000 + b"}    ", r"the safetensors header: not valid JSON \(Exceeds"),
])
def test_a_file_that_is_not_safetensors_is_refused(copy, content, message):
    (copy / "model.safetensors").write_bytes(content)
    with pytest.raises(UsageError, match=rf"^{copy / 'model.safetensors'}: .*{message}"):
        load(copy)


def test_a_sharded_index_naming_a_tensor_its_file_lacks(copy):
    header, _ = split(copy / "model.safetensors")
    weight_map = dict.fromkeys((n for n in header if n != "__metadata__"), "model.safetensors")
    (copy / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {**weight_map, "extra.weight": "model.safetensors"}}))
    with pytest.raises(UsageError, match=r"model.safetensors: has no tensor extra.weight, which the index puts there"):
        load(copy)
    (copy / "model.safetensors.index.json").write_text("[]")
    with pytest.raises(UsageError, match=r"model.safetensors.index.json: expected \"weight_map\""):
        load(copy)
    (copy / "model.safetensors.index.json").write_text('{"weight_map": ' + "[" * 100_000)
    with pytest.raises(UsageError, match=r"model.safetensors.index.json: not valid JSON \(maximum recursion"):
        load(copy)


@pytest.mark.parametrize(("config", "message"), [
    (b"{not json", r"not valid JSON"),
    (b"\xff\xfe{}", r"not valid JSON"),
    (b'{"vocab_size": ' + b"5" * 5000 + b"}", r"not valid JSON \(Exceeds the limit"),
    (b'{"model_type": "gptj", "n_embd": 64, "x": ' + b"[" * 100_000, r"not valid JSON \(maximum recursion"),
    (b'{"model_type": "gptj", "vocab_size": 512, "n_embd": 64, "n_layer": 2, "n_head": 4, "rotary_dim": 8, '
     b'"layer_norm_epsilon": NaN}', r"norm_eps=nan must be a finite number > 0"),
    (b'["gptj"]', r"expected a JSON object of config fields, got list"),
    (b"null", r"expected a JSON object of config fields, got NoneType"),
])
def test_an_unreadable_config_json_is_named(copy, config, message):
    (copy / "config.json").write_bytes(config)
    with pytest.raises(UsageError, match=rf"^{copy / 'config.json'}: {message}"):
        load(copy)


@pytest.mark.parametrize(("changes", "message"), [
    ({"n_embd": "64"}, r"d_model='64' must be an integer"),
    ({"n_embd": 64.0}, r"d_model=64.0 must be an integer"),
    ({"n_layer": True}, r"n_layers=True must be an integer"),
    ({"vocab_size": -512}, r"vocab_size=-512 must be an integer >= 1"),
    ({"vocab_size": 0}, r"vocab_size=0 must be an integer >= 1"),
    ({"layer_norm_epsilon": "tiny"}, r"norm_eps='tiny' must be a number"),
    ({"layer_norm_epsilon": -1e-5}, r"norm_eps=-1e-05 must be a finite number > 0"),
    ({"tie_word_embeddings": "false"}, r"tie_embeddings='false' must be true or false"),
    ({"eos_token_id": -1}, r"eos_id=-1 must be an integer >= 0"),
    ({"n_head": 5}, r"n_heads=5 does not divide d_model=64"),
    ({"n_head": 128}, r"n_heads=128 does not divide d_model=64"),
    ({"n_positions": None}, r"max_positions=None must be an integer"),
])
def test_wrong_config_fields_are_named_with_the_file(copy, changes, message):
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **changes}))
    with pytest.raises(UsageError, match=rf"^{copy / 'config.json'}: {message}"):
        load(copy)


def test_an_unknown_dtype_is_named(saved):
    with pytest.raises(UsageError, match=r"dtype='float16' must be one of \('float32', 'bfloat16'\)"):
        load_model(saved, mesh=make_mesh(devices=jax.devices()[:1]), dtype="float16")


@pytest.mark.parametrize(("name", "content"), [("tokenizer.json", "{broken"), ("tokenizer.json", '{"model": 3}'),
                                               ("tokenizer_config.json", "[unclosed")])
def test_an_unreadable_tokenizer_is_named_before_the_weights_load(copy, name, content):
    Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")).save(str(copy / "tokenizer.json"))
    (copy / name).write_text(content)
    (copy / "model.safetensors").write_bytes(b"")  # never reached
    with pytest.raises(UsageError, match=rf"^{copy}: its tokenizer .* cannot be read"):
        load(copy)
