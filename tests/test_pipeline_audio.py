"""Text to audio: the mel codec, WAV files with their settings, durations, bad requests."""

import wave

import numpy as np
import pytest
import torch
from conftest import randomize

from app.cli import main as cli
from conditioning.byte_encoder import ByteTextEncoder
from conditioning.mel import MelCodec
from dit import DiT, DiTConfig, StreamConfig
from pipelines.audio import TextToAudioPipeline
from pipelines.outputs import read_wav
from pipelines.request import Request, RequestError
from pipelines.spec import ModelSpec

CODEC = MelCodec(n_mels=32, griffin_lim_iters=8)


@pytest.fixture
def pipe() -> TextToAudioPipeline:
    torch.manual_seed(0)
    te = ByteTextEncoder(width=16, depth=1, heads=2, max_length=64)
    cfg = DiTConfig.preset(
        "tiny",
        streams=(StreamConfig("text", 16, "none"), StreamConfig("audio", CODEC.token_dim)),
        pooled_dim=16,
    )
    model = randomize(DiT.from_dit_config(cfg), std=0.05)
    spec = ModelSpec(
        name="tiny-audio",
        modality="audio",
        seconds=2.0,
        sample_rate=16_000,
        defaults={"steps": 3, "guidance": 2.0, "solver": "heun"},
        extra={"codec": CODEC.to_dict()},
    )
    return TextToAudioPipeline(model, te, spec)


def test_codec_round_trip_keeps_a_tone():
    """A 440 Hz tone through mel -> Griffin-Lim comes back at 440 Hz with its length."""
    codec = MelCodec()
    t = torch.arange(16_000) / 16_000
    tone = 0.5 * torch.sin(2 * torch.pi * 440 * t)[None]
    back = codec.decode(codec.encode(tone), 16_000)[0]
    assert back.shape == (16_000,)
    spectrum = torch.fft.rfft(back).abs()
    peak = int(spectrum.argmax())  # 1 Hz bins
    assert abs(12 * np.log2(peak / 440)) < 0.5  # within half a semitone (mel bins are coarse)
    # and the frames survive the token packing exactly
    frames = codec.encode(tone)
    tokens = codec.to_tokens(frames)
    assert tokens.shape[-1] == codec.token_dim
    assert torch.equal(codec.from_tokens(tokens)[:, : frames.shape[1]], frames)


@pytest.mark.parametrize("seconds", [0.3, 1.0, 1.7, 3.9])  # 3.9 s: longer than training (2 s)
def test_any_duration_gives_that_many_samples(pipe, seconds):
    (out,) = pipe(Request(prompt="a bell", seed=1, duration=seconds))
    assert out.media.shape == (round(seconds * 16_000),)
    assert out.media.dtype == np.float32 and np.abs(out.media).max() <= 1


def test_wav_carries_settings_and_replays(pipe, tmp_path):
    outs = pipe(Request(prompt="two clicks", seed=4, duration=0.8, num_outputs=2))
    paths = pipe.save(outs, tmp_path)
    assert [p.suffix for p in paths] == [".wav", ".wav"]
    with wave.open(str(paths[1])) as w:  # a plain 16-bit PCM mono WAV any reader opens
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16_000)
        assert w.getnframes() == 12_800
    samples, rate, settings = read_wav(paths[1])
    assert rate == 16_000 and settings["seed"] == 5 and settings["duration"] == 0.8
    replay_fields = {k: v for k, v in settings.items() if k in Request.__dataclass_fields__}
    (replay,) = pipe(Request.from_dict(replay_fields))
    # Replayed alone, not in its batch of 2: equal up to the GEMMs' summation order, which
    # Griffin-Lim's phase iterations amplify (as for ``alone`` below).
    assert np.abs(replay.media - samples).max() < 1e-3
    # same seed, same sound, whatever the batch (up to float summation order in the GEMMs)
    (alone,) = pipe(Request(prompt="two clicks", seed=5, duration=0.8))
    assert np.abs(alone.media - outs[1].media).max() < 1e-3
    assert np.abs(alone.media - outs[0].media).max() > 1e-3  # another seed is another sound


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(duration=0), "duration=0"),
        (dict(duration=-1.0), "duration=-1.0"),
        (dict(duration=4.5), "beyond this model's limit of 4.0 s"),
        (dict(duration=float("nan")), "duration=nan"),
        (dict(sample_rate=44_100), "16000 Hz"),
        (dict(guidance=float("nan")), "finite"),
        (dict(width=32), "no width or height"),
    ],
)
def test_bad_audio_requests_are_clear_errors(pipe, change, message):
    with pytest.raises(RequestError, match=message):
        pipe(Request(**{"prompt": "a bell", **change}))


def test_cli_writes_a_wav_and_refuses_bad_input(pipe, tmp_path, capsys):
    pipe.save_pretrained(tmp_path / "model")
    out = tmp_path / "out"
    base = [
        "generate",
        "a low bell",
        "--model",
        str(tmp_path / "model"),
        "--out",
        str(out),
        "--quiet",
    ]
    for extra in (
        ["--duration", "0"],
        ["--duration", "9"],
        ["--sample-rate", "8000"],
        ["--guidance", "nan"],
    ):
        assert cli([*base, *extra]) == 2
        assert "dit-studio generate:" in capsys.readouterr().err
    assert not out.exists()  # nothing partial
    assert cli([*base, "--duration", "1.5", "--seed", "2"]) == 0
    (path,) = out.glob("*.wav")
    samples, rate, settings = read_wav(path)
    assert (len(samples), rate, settings["prompt"]) == (24_000, 16_000, "a low bell")


def test_sound_source_tokens_match_what_a_request_gets():
    """Training clips are exactly as many tokens as a request for their duration samples."""
    from training.data import SoundsSource

    codec = MelCodec(frames_per_token=4)
    source = SoundsSource(40, seed=0, seconds=3.0, codec=codec)
    assert sum(len(b) for b in source.buckets()) == 40
    for bucket in source.buckets()[:5]:
        for i in bucket[:2]:
            tokens, caption = source.item(int(i))
            scene = source.ds[int(i)]["scene"]
            assert scene == source.ds.scene(int(i)) and caption
            assert tokens.shape == (codec.tokens_for(scene.duration), codec.token_dim)


def test_bundled_sounds_model_is_the_audio_default(tmp_path):
    """The README's audio command: the bundled sounds-t2a, a 2 s 16 kHz WAV that is not
    silence, its settings naming the model; the same seed makes the same bytes."""
    for run in ("a", "b"):
        args = [
            "generate",
            "a click, then a low bell",
            "--audio",
            "--duration",
            "2",
            "--seed",
            "3",
            "--steps",
            "4",
            "--quiet",
            "--out",
            str(tmp_path / run),
        ]
        assert cli(args) == 0
    (a,), (b,) = (list((tmp_path / r).glob("*.wav")) for r in ("a", "b"))
    samples, rate, settings = read_wav(a)
    assert (len(samples), rate, settings["model"]) == (32_000, 16_000, "sounds-t2a")
    assert samples.std() > 0.01
    assert a.read_bytes() == b.read_bytes()


def test_semitones_per_band_matches_the_filterbank_centres():
    import math

    import numpy as np
    import torchaudio

    from conditioning.mel import MelCodec

    codec = MelCodec()  # 80 bands over 20 Hz - 8 kHz: the 3.1 / 1.9 / 1.3 semitones
    fb = torchaudio.functional.melscale_fbanks(
        codec.n_fft // 2 + 1, codec.f_min, codec.f_max, codec.n_mels, codec.sample_rate
    )
    freqs = np.linspace(0, codec.sample_rate / 2, codec.n_fft // 2 + 1)
    centres = freqs[fb.argmax(0).numpy()]  # each band's peak bin: its centre, to a bin
    for f in (440.0, 987.77):  # where bands are wider than a bin, the spacing of the centres
        i = int(np.searchsorted(centres, f))
        measured = 12 * math.log2(1 + (centres[i + 2] - centres[i - 2]) / 4 / f)
        assert codec.semitones_per_band(f) == pytest.approx(measured, rel=0.25)
    coarse = [round(codec.semitones_per_band(f), 1) for f in (130.81, 261.63, 440.0)]
    assert coarse == [3.1, 1.9, 1.3]
    fine = MelCodec(n_mels=160, f_min=100.0, f_max=4000.0, n_fft=2048)
    assert fine.semitones_per_band(130.81) < 0.6 * codec.semitones_per_band(130.81)
