"""The studio's own model folders (dit/pretrained.py): save -> load gives the same model, in
diffusers' layout, and generating needs neither diffusers nor torch._dynamo imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conditioning.byte_encoder import ByteTextEncoder
from dit import DiT, DiTConfig, StreamConfig
from dit.pretrained import WEIGHTS


def _dit() -> DiT:
    torch.manual_seed(0)
    cfg = DiTConfig.preset(
        "tiny", streams=(StreamConfig("text", 8, "none"), StreamConfig("image", 12))
    )
    return DiT.from_dit_config(cfg)


def test_save_then_load_gives_the_same_weights_config_and_dtype(tmp_path):
    model = _dit()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == "DiT" and "_diffusers_version" in config
    assert (tmp_path / WEIGHTS).is_file()
    loaded = DiT.from_pretrained(tmp_path)
    assert not loaded.training and loaded.dtype == torch.float32
    assert loaded.config == model.config and loaded.config.width == 32
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    half = DiT.from_pretrained(tmp_path, torch_dtype=torch.float16)
    assert half.dtype == torch.float16


def test_fp16_weights_load_as_fp32_values_of_the_stored_halves(tmp_path):
    model = _dit().half()
    model.save_pretrained(tmp_path)
    loaded = DiT.from_pretrained(tmp_path)
    assert loaded.dtype == torch.float32
    w = next(iter(model.state_dict()))
    assert torch.equal(loaded.state_dict()[w], model.state_dict()[w].float())


def test_old_config_keys_are_ignored_and_bad_folders_say_what_is_wrong(tmp_path):
    ByteTextEncoder(width=16, depth=1, heads=2, max_length=8).save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "retired_option": 3}))
    assert ByteTextEncoder.from_pretrained(tmp_path).config.width == 16
    with pytest.raises(ValueError, match="holds a ByteTextEncoder, not a DiT"):
        DiT.from_pretrained(tmp_path)
    path.write_text(json.dumps({**config, "width": 32}))  # weights of width 16
    with pytest.raises(ValueError, match="does not fit a ByteTextEncoder"):
        ByteTextEncoder.from_pretrained(tmp_path)


def test_generating_imports_neither_diffusers_nor_dynamo():
    code = (
        "import sys; from pipelines.registry import load_pipeline; "
        "p = load_pipeline('shapes-t2i'); p('a red circle', steps=1); "
        "print([m for m in ('diffusers', 'torch._dynamo') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
