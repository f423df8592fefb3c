"""The trainer on video and on joint audio+video: tiny recipes train, export a folder that the
registry loads as the right pipeline, and that folder makes media at other frame rates."""

import json

import numpy as np
import torch

from pipelines.registry import load_pipeline
from training.media import media_of
from training.recipe import Recipe
from training.trainer import train

TINY = dict(
    preset="tiny",
    data_size=16,
    size=16,
    patch=4,
    tpatch=2,
    batch_size=4,
    steps=3,
    warmup=1,
    lr=1e-3,
    checkpoint_every=3,
    sample_every=1000,
    text_encoder={"width": 16, "depth": 1, "heads": 2, "max_length": 64},
)


def test_video_recipe_trains_and_exports_a_video_pipeline(tmp_path):
    recipe = Recipe(
        name="tiny-video", modality="video", data="motion", seconds=0.5, fps=8.0, **TINY
    )
    folder = train(recipe, tmp_path / "run")
    pipe = load_pipeline(str(folder))
    assert type(pipe).__name__ == "TextToVideoPipeline"
    assert (pipe.spec.fps, pipe.spec.tpatch, pipe.spec.seconds) == (8.0, 2, 0.5)
    (out,) = pipe("a red circle moving left", seed=0, steps=2, fps=16.0)
    assert out.media.shape == (8, 16, 16, 3)
    losses = [json.loads(x)["loss"] for x in (tmp_path / "run/loss.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(np.isfinite(losses))


def test_audio_video_times_give_joint_and_one_given_stream_items():
    recipe = Recipe(
        name="tiny-av",
        modality="audio+video",
        data="bounce",
        seconds=1.0,
        fps=8.0,
        codec={"n_mels": 16, "frames_per_token": 4},
        **TINY,
    )
    media = media_of(recipe)
    t = media.times(4000, torch.Generator().manual_seed(0))
    video_given, audio_given = t["video"] == 1, t["audio"] == 1
    joint = ~video_given & ~audio_given
    assert not (video_given & audio_given).any()  # every item trains at least one stream
    assert torch.equal(t["video"][joint], t["audio"][joint])  # joint items share one time
    shares = [m.float().mean().item() for m in (joint, video_given, audio_given)]
    assert np.allclose(shares, media.MODES, atol=0.03)


def test_audio_video_recipe_trains_and_exports_a_joint_pipeline(tmp_path):
    recipe = Recipe(
        name="tiny-av",
        modality="audio+video",
        data="bounce",
        seconds=1.0,
        fps=8.0,
        codec={"n_mels": 16, "frames_per_token": 4},
        **TINY,
    )
    folder = train(recipe, tmp_path / "run")
    pipe = load_pipeline(str(folder))
    assert type(pipe).__name__ == "TextToAudioVideoPipeline"
    (out,) = pipe("a red ball bouncing with a thud", seed=0, steps=2, fps=12.0, duration=1.5)
    assert out.media.frames.shape == (18, 16, 16, 3)
    assert out.media.audio.shape == (24_000,)
