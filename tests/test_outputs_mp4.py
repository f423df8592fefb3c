"""MP4 outputs: H.264 + AAC of the requested duration, a faithful round trip, settings that
survive ffmpeg's escaping, and byte-identical encodes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.mp4 import mp4_bytes, parse_ffmetadata, probe_mp4, read_mp4, write_mp4
from pipelines.replay import read_settings

FPS, RATE, SCALE = 8, 16_000, 4
ONSET = 0.5  # s: the tone starts here, silence before
SETTINGS = {
    "prompt": 'a red square = fast; #1 \\ "quoted"\nsecond line: café 猫 🎬',
    "seed": 7,
    "guidance": 3.5,
    "loras": [["x=y;z#", 0.7]],
}


def _clip() -> np.ndarray:
    """12 frames, 24x24: a 6x6 square moving 1.5 px per frame on a coloured ground."""
    frames = np.zeros((12, 24, 24, 3), np.uint8)
    frames[...] = (20, 60, 120)
    for i in range(12):
        x = round(1.5 * i)
        frames[i, 9:15, x : x + 6] = (250, 200, 30)
    return frames


def _tone() -> np.ndarray:
    t = np.arange(round(12 / FPS * RATE)) / RATE  # exactly the video's 1.5 s
    return np.where(t >= ONSET, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)


@pytest.fixture(scope="module")
def clip_mp4(tmp_path_factory) -> tuple[bytes, Path]:
    data = mp4_bytes(_clip(), FPS, SETTINGS, audio=_tone(), sample_rate=RATE, scale=SCALE)
    path = tmp_path_factory.mktemp("mp4") / "clip.mp4"
    path.write_bytes(data)
    return data, path


def test_h264_video_and_aac_audio_of_the_requested_duration(clip_mp4):
    info = probe_mp4(clip_mp4[1])
    assert (info["video_codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert (info["width"], info["height"]) == (24 * SCALE, 24 * SCALE)
    assert info["frames"] == 12 and info["fps"] == pytest.approx(FPS)
    assert info["video_duration"] == pytest.approx(12 / FPS, abs=1 / FPS)
    assert (info["audio_codec"], info["sample_rate"]) == ("aac", RATE)
    assert info["audio_duration"] == pytest.approx(12 / FPS, abs=0.05)
    assert clip_mp4[0].index(b"moov") < clip_mp4[0].index(b"mdat")  # faststart: index first


def test_round_trip_frames_audio_and_settings(clip_mp4):
    frames, fps, audio, rate, settings = read_mp4(clip_mp4[0])
    clip = _clip().astype(np.float32)
    assert frames.shape == (12, 24 * SCALE, 24 * SCALE, 3) and frames.dtype == np.uint8
    small = frames.reshape(12, 24, SCALE, 24, SCALE, 3).astype(np.float32).mean(axis=(2, 4))
    assert np.abs(small - clip).mean() < 8
    # Each decoded frame is nearest to its own input frame: order and motion survive.
    errors = np.abs(small[:, None] - clip[None]).mean(axis=(2, 3, 4))  # (decoded, input)
    np.testing.assert_array_equal(errors.argmin(axis=1), np.arange(12))
    assert fps == pytest.approx(FPS) and rate == RATE
    # The muxer's edit list trims AAC's priming samples: same length, the tone starts on time.
    assert audio.dtype == np.float32 and len(audio) == len(_tone())
    onset = np.argmax(np.abs(audio) > 0.1) / RATE
    assert abs(onset - ONSET) < 0.03
    assert np.abs(audio[: int((ONSET - 0.05) * RATE)]).max() < 0.02  # silence before
    spectrum = np.abs(np.fft.rfft(audio[int(0.6 * RATE) :]))
    peak_hz = np.argmax(spectrum) * RATE / len(audio[int(0.6 * RATE) :])
    assert abs(peak_hz - 440) < 3
    assert settings == SETTINGS


def test_read_settings_dispatches_mp4(tmp_path):
    path = write_mp4(tmp_path / "out" / "clip.mp4", _clip(), FPS, SETTINGS, scale=2)
    assert read_settings(path) == SETTINGS
    assert not list(path.parent.glob(".*.part"))  # written atomically, nothing left behind


def test_same_inputs_give_identical_bytes_across_processes(clip_mp4, tmp_path):
    again = mp4_bytes(_clip(), FPS, SETTINGS, audio=_tone(), sample_rate=RATE, scale=SCALE)
    assert again == clip_mp4[0]
    # Another interpreter (as the batch runner's workers are) makes the same bytes.
    np.savez(tmp_path / "inputs.npz", frames=_clip(), audio=_tone())
    other = (
        "import json, sys; import numpy as np; from pipelines.mp4 import mp4_bytes; "
        "x = np.load(sys.argv[1]); sys.stdout.buffer.write(mp4_bytes(x['frames'], "
        f"{FPS}, json.loads(sys.argv[2]), audio=x['audio'], sample_rate={RATE}, scale={SCALE}))"
    )
    cmd = [sys.executable, "-c", other, str(tmp_path / "inputs.npz"), json.dumps(SETTINGS)]
    run = subprocess.run(cmd, cwd=Path(__file__).parents[1], capture_output=True, check=True)
    assert run.stdout == clip_mp4[0]
    changed = mp4_bytes(
        _clip(), FPS, {**SETTINGS, "seed": 8}, scale=SCALE, audio=_tone(), sample_rate=RATE
    )
    assert changed != clip_mp4[0]


def test_without_audio_there_is_no_audio_stream(tmp_path):
    path = tmp_path / "silent.mp4"
    path.write_bytes(mp4_bytes(_clip(), FPS, SETTINGS, scale=SCALE))
    info = probe_mp4(path)
    assert info["audio_codec"] is None and info["sample_rate"] == 0 and info["frames"] == 12
    frames, _, audio, rate, settings = read_mp4(path)
    assert audio is None and rate == 0 and len(frames) == 12 and settings == SETTINGS


def test_audio_within_one_frame_period_is_kept_as_it_is():
    short = _tone()[: -RATE // 10]  # 0.1 s short of the video, under one frame (0.125 s)
    _, _, audio, _, _ = read_mp4(mp4_bytes(_clip(), FPS, {}, audio=short, sample_rate=RATE))
    assert len(audio) == len(short)


def test_odd_sides_are_upsampled_to_even():
    frames = np.full((3, 5, 7, 3), 128, np.uint8)
    assert read_mp4(mp4_bytes(frames, 4, {}))[0].shape == (3, 10, 14, 3)
    assert read_mp4(mp4_bytes(frames, 4, {}, scale=2))[0].shape == (3, 10, 14, 3)
    assert read_mp4(mp4_bytes(frames, 4, {}, scale=3))[0].shape == (3, 20, 28, 3)


def test_an_mp4_without_studio_settings_is_refused_clearly(tmp_path):
    import imageio_ffmpeg

    path = tmp_path / "foreign.mp4"
    writer = imageio_ffmpeg.write_frames(str(path), (16, 16), fps=4, ffmpeg_log_level="error")
    writer.send(None)
    for _ in range(2):
        writer.send(np.zeros((16, 16, 3), np.uint8))
    writer.close()
    assert read_mp4(path)[4] == {}
    with pytest.raises(ValueError, match="no dit-studio settings"):
        read_settings(path)


def test_ffmetadata_unescaping():
    # A backslash escapes =, ;, #, itself and a newline; ; and # start comment lines.
    text = ";FFMETADATA1\ntitle=a\\=b\\;c\\#d\\\\\\\nnext\n# note=skip\ncomment=x\n"
    text += "[STREAM]\ncomment=y\n"  # stream sections follow the global tags
    assert parse_ffmetadata(text) == {"title": "a=b;c#d\\\nnext", "comment": "x"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frames": _clip().astype(np.float32)}, "uint8"),
        ({"frames": _clip()[..., 0]}, r"\(F, H, W, 3\)"),
        ({"frames": np.zeros((12, 24, 24, 4), np.uint8)}, r"\(F, H, W, 3\)"),
        ({"frames": np.zeros((0, 24, 24, 3), np.uint8)}, "empty"),
        ({"fps": 0}, "fps"),
        ({"fps": -8}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"fps": float("inf")}, "fps"),
        ({"scale": 0}, "scale"),
        ({"audio": _tone()[: RATE // 2]}, "within one frame period"),
        ({"audio": np.zeros(2 * RATE, np.float32)}, "within one frame period"),
        ({"audio": _tone()[: -RATE * 3 // 20]}, "within one frame period"),  # 0.15 s short
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": 12345}, "sample_rate"),
        ({"audio": np.zeros((2, RATE), np.float32)}, "mono"),
        ({"audio": np.full(12 * RATE // FPS, np.nan, np.float32)}, "finite"),
    ],
)
def test_bad_inputs_raise_clear_errors(change, message):
    args = {"frames": _clip(), "fps": FPS, "audio": _tone(), "sample_rate": RATE, **change}
    with pytest.raises(ValueError, match=message):
        mp4_bytes(args.pop("frames"), args.pop("fps"), {}, **args)


def test_reading_something_else_raises_a_clear_error():
    with pytest.raises(ValueError, match="ffmpeg could not read"):
        read_mp4(b"\0\0\0\x18ftypisom but no boxes after")
