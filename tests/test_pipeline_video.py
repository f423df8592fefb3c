"""Text to video: tubelets with time in seconds, any fps, MP4 files with settings, bad requests."""

import json

import numpy as np
import pytest
import torch
from conftest import randomize

from app.cli import main as cli
from conditioning.byte_encoder import ByteTextEncoder
from dit import DiT, DiTConfig, StreamConfig
from dit.tokens import patchify_video, unpatchify_video, video_positions
from pipelines.mp4 import probe_mp4, read_mp4
from pipelines.replay import read_settings
from pipelines.request import Request, RequestError
from pipelines.spec import ModelSpec
from pipelines.video import TextToVideoPipeline

P, Q = 4, 2  # patch, frames per tubelet


def tiny_video_pipeline() -> TextToVideoPipeline:
    torch.manual_seed(0)
    te = ByteTextEncoder(width=16, depth=1, heads=2, max_length=64)
    cfg = DiTConfig.preset(
        "tiny",
        streams=(StreamConfig("text", 16, "none"), StreamConfig("video", 3 * Q * P * P)),
        pooled_dim=16,
    )
    model = randomize(DiT.from_dit_config(cfg), std=0.05)
    spec = ModelSpec(
        name="tiny-video",
        modality="video",
        patch=P,
        width=16,
        height=16,
        seconds=1.0,
        fps=8.0,
        tpatch=Q,
        defaults={"steps": 2, "guidance": 2.0, "solver": "euler"},
    )
    return TextToVideoPipeline(model, te, spec)


@pytest.fixture(scope="module")
def pipe() -> TextToVideoPipeline:
    return tiny_video_pipeline()


def test_tubelets_round_trip_and_positions_are_seconds():
    x = torch.randn(2, 8, 3, 16, 12)  # (B, F, C, H, W)
    tokens = patchify_video(x, P, Q)
    assert tokens.shape == (2, 4 * 4 * 3, 3 * Q * P * P)
    assert torch.equal(unpatchify_video(tokens, P, Q, 4, 4, 3), x)
    # tubelet k of a clip at fps starts at k * Q / fps seconds, at 8 and at 24 fps alike
    for fps in (8.0, 24.0):
        pos = video_positions(8, 4, 3, fps, Q)  # (4 * 4 * 3, 4)
        times = pos[:, 1].reshape(4, 12)
        assert torch.allclose(times, (torch.arange(4.0) * Q / fps)[:, None].expand(4, 12))
        assert torch.equal(pos[:12, 2:], pos[12:24, 2:])  # same (y, x) grid every tubelet


def test_any_fps_and_duration_give_that_many_frames(pipe):
    for duration, fps in ((1.0, 8.0), (0.5, 12.0), (2.0, 4.0), (1.0, 16.0)):
        (out,) = pipe(Request(prompt="a red ball", seed=1, duration=duration, fps=fps))
        assert out.media.shape == (round(duration * fps), 16, 16, 3)
        assert out.media.dtype == np.uint8
        assert out.settings["fps"] == fps and out.settings["duration"] == duration


def test_seed_gives_the_same_clip_at_any_batch(pipe):
    one = pipe(Request(prompt="a blue square moving left", seed=5))[0].media
    four = pipe(Request(prompt="a blue square moving left", seed=4, num_outputs=4))
    assert np.array_equal(four[1].media, one)
    assert not np.array_equal(four[0].media, one)


def test_mp4_file_carries_the_clip_and_its_settings(pipe, tmp_path):
    (out,) = pipe(Request(prompt="a green triangle growing", seed=2, duration=1.5, fps=8.0))
    (path,) = pipe.save([out], tmp_path)
    assert path.suffix == ".mp4"
    info = probe_mp4(path)
    assert info["video_codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["frames"] == 12 and abs(info["video_duration"] - 1.5) < 1e-3
    assert info["audio_codec"] is None
    settings = read_settings(path)
    assert settings == json.loads(json.dumps(out.settings))  # JSON: tuples come back lists
    frames, fps, _, _, _ = read_mp4(path)
    # upsampled by an integer factor for players: downsample back and compare
    k = frames.shape[1] // 16
    small = frames[:, ::k, ::k].astype(np.float32)
    assert fps == 8.0 and small.shape == out.media.shape
    assert np.abs(small - out.media).mean() < 12  # H.264 is lossy; a wrong frame is ~60+ off
    # replay: the settings make the same clip again
    replay = Request.from_dict(
        {k: v for k, v in settings.items() if k in Request.__dataclass_fields__} | {"loras": []}
    )
    assert np.array_equal(pipe(replay)[0].media, out.media)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"fps": 0.0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"fps": 500.0}, "fps"),
        ({"duration": 0.9, "fps": 8.0}, "multiples of 2 frames"),
        ({"duration": 0.0}, "duration"),
        ({"duration": 9.0}, "limit"),
        ({"sample_rate": 16000}, "no sound"),
        ({"width": 18}, "multiple of 4"),
    ],
)
def test_bad_video_requests_are_clear(pipe, fields, words):
    with pytest.raises(RequestError, match=words):
        pipe.resolve(Request(prompt="x", seed=0, **fields))


def test_image_models_refuse_fps():
    from pipelines.request import Limits

    with pytest.raises(RequestError, match="images"):
        Request(
            prompt="x", seed=0, steps=1, guidance=1.0, solver="euler", width=8, height=8, fps=8.0
        ).validate(Limits())


def test_cli_writes_an_mp4_and_refuses_bad_fps_without_writing(tmp_path, capsys):
    pipe = tiny_video_pipeline()
    pipe.save_pretrained(tmp_path / "model")
    out = tmp_path / "out"
    model = str(tmp_path / "model")
    code = cli(
        [
            "generate",
            "a yellow ball bouncing",
            "--model",
            model,
            "--seed",
            "3",
            "--fps",
            "12",
            "--duration",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    (mp4,) = out.glob("*.mp4")
    assert probe_mp4(mp4)["frames"] == 12
    code = cli(
        ["generate", "x", "--model", model, "--fps", "7", "--out", str(tmp_path / "bad"), "--quiet"]
    )
    assert code == 2 and "frames" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
