"""Factorised space-time (dit/temporal.py): an image model's weights make a per-frame image
model at step 0, the temporal layers then mix frames, and bad frame layouts are refused."""

import pytest
import torch

from dit import DiT, DiTConfig, StreamConfig
from dit.tokens import image_positions, text_positions, video_positions
from training.start import inflated

F, H, W, D_IN, D_TEXT, L = 3, 4, 4, 12, 16, 5
S = H * W


def _image_model(text: bool = True) -> DiT:
    streams = (StreamConfig("text", D_TEXT, head="none"),) if text else ()
    torch.manual_seed(0)
    model = DiT.from_dit_config(
        DiTConfig.preset("tiny", streams=(*streams, StreamConfig("image", D_IN)))
    )
    for p in model.parameters():  # a trained model: nothing zero
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def _video_from(image: DiT) -> DiT:
    streams = tuple(
        StreamConfig("video" if s.name == "image" else s.name, s.in_dim, s.head)
        for s in image.cfg.streams
    )
    video = DiT.from_dit_config(image.cfg.replace(streams=streams, temporal="video")).eval()
    video.load_state_dict(inflated(image.state_dict(), video))
    return video


def _per_frame(image: DiT, x: torch.Tensor, t: torch.Tensor, text=None) -> torch.Tensor:
    """(B, F S, D) -> the image model run on each frame alone, frames concatenated."""
    outs = []
    for f in range(x.shape[1] // S):
        tokens = {"image": x[:, f * S : (f + 1) * S]}
        positions = {"image": image_positions(H, W)}
        if text is not None:
            tokens["text"], positions["text"] = text, text_positions(L)
        outs.append(image(tokens, positions, t)["image"])
    return torch.cat(outs, dim=1)


def _video(model: DiT, x, t, text=None, frames=F, fps=8.0):
    tokens, positions = {"video": x}, {"video": video_positions(frames, H, W, fps)}
    if text is not None:
        tokens["text"], positions["text"] = text, text_positions(L)
    return model(tokens, positions, t)["video"]


def test_inflated_image_model_is_the_image_model_on_every_frame():
    image = _image_model(text=False)
    video = _video_from(image)
    x, t = torch.randn(2, F * S, D_IN), torch.rand(2)
    with torch.no_grad():
        torch.testing.assert_close(_video(video, x, t), _per_frame(image, x, t), atol=1e-5, rtol=0)


def test_with_text_one_frame_is_exact_and_identical_frames_stay_exact():
    image = _image_model()
    video = _video_from(image)
    text, t = torch.randn(2, L, D_TEXT), torch.rand(2)
    one = torch.randn(2, S, D_IN)
    with torch.no_grad():
        ref = _per_frame(image, one, t, text)
        torch.testing.assert_close(_video(video, one, t, text, frames=1), ref, atol=1e-5, rtol=0)
        # the text stream takes the mean of its frames' updates: exact when frames agree
        same = one.repeat(1, F, 1)
        torch.testing.assert_close(
            _video(video, same, t, text), ref.repeat(1, F, 1), atol=1e-5, rtol=0
        )


def test_temporal_layers_start_as_identity_then_mix_frames():
    video = _video_from(_image_model(text=False))
    x, t = torch.randn(1, F * S, D_IN), torch.rand(1)
    changed = x.clone()
    changed[:, -S:] += 1.0  # only the last frame differs
    with torch.no_grad():
        first = _video(video, x, t)[:, :S]
        assert torch.equal(first, _video(video, changed, t)[:, :S])  # frames independent
        for p in video.time_layers.parameters():
            torch.nn.init.normal_(p, std=0.2)
        assert not torch.allclose(_video(video, x, t)[:, :S], _video(video, changed, t)[:, :S])


def test_frame_layout_is_checked():
    video = _video_from(_image_model(text=False))
    x, t = torch.randn(1, F * S, D_IN), torch.rand(1)
    shuffled = video_positions(F, H, W, 8.0)[
        torch.randperm(F * S, generator=torch.Generator().manual_seed(0))
    ]
    with pytest.raises(ValueError, match="time-major"):
        video({"video": x}, {"video": shuffled}, t)
    with pytest.raises(ValueError, match="temporal"):
        DiTConfig.preset("tiny", streams=(StreamConfig("video", D_IN),), temporal="audio")


def test_frame_noise_is_unit_gaussian_with_the_asked_correlation():
    from dit.flow import frame_noise

    g = torch.Generator().manual_seed(0)
    plain = frame_noise((2, F * S, D_IN), F, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(
        plain, torch.randn((2, F * S, D_IN), generator=torch.Generator().manual_seed(0))
    )
    x = frame_noise((4000, F * S, 2), F, 0.8, g).unflatten(1, (F, S))  # (B, F, S, 2)
    assert abs(x.var().item() - 1.0) < 0.02
    corr = (x[:, 0] * x[:, 1]).mean().item()  # two frames, same place
    assert abs(corr - 0.8) < 0.02
    assert abs((x[:, 0, 0] * x[:, 0, 1]).mean().item()) < 0.02  # two places: independent
