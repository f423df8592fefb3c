"""Joint audio + video: one model, two streams on one seconds axis, MP4 with sound, one stream
given (video-to-audio, audio-to-video), per-stream guidance, and the joint training loss."""

import numpy as np
import pytest
import torch
from conftest import randomize

from conditioning.byte_encoder import ByteTextEncoder
from conditioning.mel import MelCodec
from dit import DiT, DiTConfig, StreamConfig
from pipelines.audio_video import AudioVideo, TextToAudioVideoPipeline
from pipelines.mp4 import probe_mp4, read_mp4
from pipelines.request import Request, RequestError
from pipelines.spec import ModelSpec
from training.objective import joint_flow_loss

P, Q = 4, 2
CODEC = MelCodec(n_mels=16, frames_per_token=4, griffin_lim_iters=4)


def tiny_av_pipeline() -> TextToAudioVideoPipeline:
    torch.manual_seed(0)
    te = ByteTextEncoder(width=16, depth=1, heads=2, max_length=64)
    streams = (
        StreamConfig("text", 16, "none"),
        StreamConfig("video", 3 * Q * P * P),
        StreamConfig("audio", CODEC.token_dim),
    )
    cfg = DiTConfig.preset("tiny", streams=streams, pooled_dim=16)
    model = randomize(DiT.from_dit_config(cfg), std=0.05)
    spec = ModelSpec(
        name="tiny-av",
        modality="audio+video",
        patch=P,
        width=8,
        height=8,
        seconds=1.0,
        fps=8.0,
        tpatch=Q,
        sample_rate=16_000,
        defaults={"steps": 2, "guidance": 2.0, "solver": "euler"},
        extra={"codec": CODEC.to_dict()},
    )
    return TextToAudioVideoPipeline(model, te, spec)


@pytest.fixture(scope="module")
def pipe() -> TextToAudioVideoPipeline:
    return tiny_av_pipeline()


@pytest.mark.parametrize(("duration", "fps"), [(1.0, 8.0), (1.5, 12.0), (0.5, 4.0)])
def test_joint_output_has_frames_and_sound_of_one_duration(pipe, duration, fps, tmp_path):
    (out,) = pipe(Request(prompt="a ball bouncing", seed=1, duration=duration, fps=fps))
    assert isinstance(out.media, AudioVideo)
    assert out.media.frames.shape == (round(duration * fps), 8, 8, 3)
    assert out.media.audio.shape == (round(duration * 16_000),)
    (path,) = pipe.save([out], tmp_path)
    info = probe_mp4(path)
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert abs(info["video_duration"] - duration) < 1e-3
    assert abs(info["audio_duration"] - duration) < 0.05
    assert read_mp4(path)[4]["prompt"] == "a ball bouncing"


def test_video_to_audio_keeps_the_clip_and_listens_to_it(pipe):
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 255, size=(8, 8, 8, 3), dtype=np.uint8)
    other = rng.integers(0, 255, size=(8, 8, 8, 3), dtype=np.uint8)
    (a,) = pipe.video_to_audio(clip, "a thud", seed=3, fps=8.0)
    (b,) = pipe.video_to_audio(other, "a thud", seed=3, fps=8.0)
    assert np.array_equal(a.media.frames, clip)  # the given clip is returned untouched
    assert a.media.audio.shape == (16_000,)
    assert not np.allclose(a.media.audio, b.media.audio)  # the sound depends on the pictures
    (again,) = pipe.video_to_audio(clip, "a thud", seed=3, fps=8.0)
    assert np.array_equal(again.media.audio, a.media.audio)
    # twice the fps: the same 8 frames last half as long, and so does the sound
    (fast,) = pipe.video_to_audio(clip, "a thud", seed=3, fps=16.0)
    assert fast.media.audio.shape == (8_000,)


def test_audio_to_video_keeps_the_sound(pipe):
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)).astype(np.float32)
    (out,) = pipe.audio_to_video(wave, "a beep", seed=2, fps=8.0)
    assert out.media.frames.shape == (8, 8, 8, 3)
    assert np.array_equal(out.media.audio, wave)


def test_per_stream_guidance_changes_only_what_it_scales(pipe):
    req = Request(prompt="a ball", seed=4, guidance=3.0)
    same = pipe.sample(pipe.resolve(req, audio_guidance=3.0))
    base = pipe.sample(pipe.resolve(req))
    other = pipe.sample(pipe.resolve(req, audio_guidance=1.0))
    assert torch.equal(same["video"], base["video"]) and torch.equal(same["audio"], base["audio"])
    # one Euler step: the video velocity does not depend on the audio scale; audio's does
    one = dict(steps=1)
    v1 = pipe.sample(pipe.resolve(req, audio_guidance=1.0, **one))
    v3 = pipe.sample(pipe.resolve(req, audio_guidance=3.0, **one))
    assert torch.allclose(v1["video"], v3["video"], atol=1e-6)
    assert not torch.allclose(v1["audio"], v3["audio"], atol=1e-4)
    assert not torch.equal(other["audio"], base["audio"])
    with pytest.raises(RequestError, match="audio_guidance"):
        pipe.resolve(req, audio_guidance=float("nan"))


def test_joint_loss_skips_given_streams_exactly():
    g = torch.Generator().manual_seed(0)
    data = {"video": torch.randn(3, 5, 4, generator=g), "audio": torch.randn(3, 2, 6, generator=g)}
    noise = {k: torch.randn(v.shape, generator=g) for k, v in data.items()}
    pred = {k: torch.randn(v.shape, generator=g) for k, v in data.items()}
    t = {"video": torch.tensor([0.3, 1.0, 0.5]), "audio": torch.tensor([0.3, 0.7, 1.0])}
    per = {k: (pred[k] - (data[k] - noise[k])).pow(2).mean(dim=(1, 2)) for k in data}
    want = (per["video"][0] + per["video"][2] + per["audio"][0] + per["audio"][1]) / 4
    assert torch.allclose(joint_flow_loss(pred, noise, data, t), want)
    # a given stream's prediction does not matter at all
    pred["video"][1] += 100.0
    pred["audio"][2] -= 100.0
    assert torch.allclose(joint_flow_loss(pred, noise, data, t), want)
