import pytest
import torch
from conftest import tiny_config, tiny_inputs

from dit import DiT, DiTConfig, StreamConfig


def test_fresh_model_outputs_zeros():
    model = DiT.from_dit_config(tiny_config()).eval()
    tokens, positions, t, pooled = tiny_inputs()
    out = model(tokens, positions, t, pooled)
    assert set(out) == {"image"}  # the text stream has no head
    assert out["image"].shape == tokens["image"].shape
    assert out["image"].abs().max().item() == 0.0


def test_save_load_identical_outputs(tiny_model, tmp_path):
    tokens, positions, t, pooled = tiny_inputs()
    before = tiny_model(tokens, positions, t, pooled)["image"]
    assert before.abs().max() > 0
    tiny_model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file()
    assert list(tmp_path.glob("*.safetensors"))
    loaded = DiT.from_pretrained(tmp_path).eval()
    assert loaded.cfg == tiny_model.cfg
    assert torch.equal(loaded(tokens, positions, t, pooled)["image"], before)


def test_pickled_weights_are_refused(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    weights = next(tmp_path.glob("*.safetensors"))
    torch.save(tiny_model.state_dict(), tmp_path / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ValueError, match="refuses to unpickle"):
        DiT.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DiT.from_pretrained(tmp_path / "missing")


def test_padding_does_not_change_real_tokens(tiny_model):
    tokens, positions, t, pooled = tiny_inputs(batch=1)
    short = tiny_model(tokens, positions, t, pooled)["image"]
    # Pad the text stream with 3 garbage tokens that the mask hides.
    padded = dict(tokens, text=torch.cat([tokens["text"], 9 * torch.randn(1, 3, 8)], 1))
    pos = dict(positions, text=torch.cat([positions["text"], positions["text"][:3]], 0))
    mask = {"text": torch.tensor([[True] * 5 + [False] * 3])}
    out = tiny_model(padded, pos, t, pooled, masks=mask)["image"]
    torch.testing.assert_close(out, short, atol=1e-5, rtol=0)


def test_batch_rows_are_independent(tiny_model):
    tokens, positions, t, pooled = tiny_inputs(batch=3)
    full = tiny_model(tokens, positions, t, pooled)["image"]
    one = tiny_model({k: v[1:2] for k, v in tokens.items()}, positions, t[1:2], pooled[1:2])
    torch.testing.assert_close(one["image"], full[1:2], atol=1e-5, rtol=0)


def test_stream_timestep_overrides_shared_time(tiny_model):
    tokens, positions, t, pooled = tiny_inputs()
    base = tiny_model(tokens, positions, t, pooled)["image"]
    same = tiny_model(tokens, positions, t, pooled, stream_t={"image": t})["image"]
    other = tiny_model(tokens, positions, t, pooled, stream_t={"image": 1 - t})["image"]
    assert torch.equal(base, same)
    assert (other - base).abs().max() > 1e-4


def test_logits_head_reads_codes_with_a_mask_token():
    cfg = DiTConfig.preset(
        "tiny",
        streams=(
            StreamConfig("text", 8, "none"),
            StreamConfig("image", head="logits", codebook_size=10),
        ),
    )
    model = DiT.from_dit_config(cfg)
    assert model.mask_id("image") == 10
    codes = torch.randint(0, 11, (2, 9))
    tokens, positions, t, _ = tiny_inputs()
    out = model({"text": tokens["text"], "image": codes}, positions, t)["image"]
    assert out.shape == (2, 9, 10)
    assert model.embed["image"].num_embeddings == 11


def test_unknown_stream_is_a_clear_error(tiny_model):
    tokens, positions, t, pooled = tiny_inputs()
    with pytest.raises(ValueError, match="unknown streams"):
        tiny_model(dict(tokens, audio=tokens["image"]), positions, t, pooled)


def test_gradient_checkpointing_same_gradients_recomputed_blocks(tiny_model):
    """Checkpointing changes where activations come from (each block runs again in the
    backward pass), never the gradients."""
    tokens, positions, t, pooled = tiny_inputs()
    calls = []
    # A pre-hook: the recomputation may stop early, before the block would return.
    hooks = [b.register_forward_pre_hook(lambda *_: calls.append(1)) for b in tiny_model.blocks]

    def grads() -> dict[str, torch.Tensor]:
        tiny_model.zero_grad(set_to_none=True)
        calls.clear()
        tiny_model(tokens, positions, t, pooled)["image"].square().mean().backward()
        return {k: p.grad.clone() for k, p in tiny_model.named_parameters() if p.grad is not None}

    tiny_model.train()
    plain, plain_calls = grads(), len(calls)
    tiny_model.enable_gradient_checkpointing()
    ckpt, ckpt_calls = grads(), len(calls)
    for h in hooks:
        h.remove()
    assert plain_calls == len(tiny_model.blocks) and ckpt_calls == 2 * plain_calls
    assert plain.keys() == ckpt.keys() and len(plain) > 10
    for k in plain:
        torch.testing.assert_close(ckpt[k], plain[k], rtol=0, atol=1e-6, msg=k)
