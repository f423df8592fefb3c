"""The audio+video evaluation's wiring: an oracle that renders each prompt's true scene scores
in sync, the shuffled pairs beside it do not, and video-to-audio keeps the given clips."""

import numpy as np
from test_pipeline_av import tiny_av_pipeline

from pipelines.audio_video import AudioVideo
from pipelines.spec import ModelSpec
from training.eval_audiovideo import eval_scenes, evaluate_audiovideo, video_to_audio_many
from training.world.audiovideo import render_audio, render_video

SPEC = ModelSpec(
    name="oracle",
    modality="audio+video",
    width=16,
    height=16,
    seconds=2.0,
    fps=8.0,
    tpatch=2,
    sample_rate=16_000,
)


class Oracle:
    """Joint generation = the true scene of each prompt; video-to-audio = the true sound."""

    spec = SPEC

    def __init__(self, n: int) -> None:
        self.scenes, self.prompts = eval_scenes(n, SPEC.seconds)

    def generate_many(self, prompts, seed=0, batch=16, desc=None, **settings):
        assert prompts == self.prompts  # the evaluation asks for its scenes in order
        fps, seconds = settings["fps"], settings["duration"]
        frames = round(fps * seconds)
        return [
            AudioVideo(render_video(s, frames, fps, 16), render_audio(s, seconds))
            for s in self.scenes
        ]


def test_true_scenes_are_in_sync_and_shuffled_pairs_are_not(monkeypatch):
    import training.eval_audiovideo as ev

    oracle = Oracle(40)

    # video-to-audio of the oracle: the true sound of each given clip's scene, in order
    def true_sounds(pipe, videos, prompts, fps, **kwargs):
        assert [render_video(s, 16, fps, 16).tolist() for s in oracle.scenes] == [
            v.tolist() for v in videos
        ]
        return [render_audio(s, 2.0) for s in oracle.scenes]

    monkeypatch.setattr(ev, "video_to_audio_many", true_sounds)
    out = evaluate_audiovideo(oracle, n=40)
    for label in ("joint", "video-to-audio", "real renders"):
        assert out[f"{label}: median_ms"] <= 20, out
        assert out[f"{label}: within_frame_pct"] == 100.0, out
        assert out[f"{label}: counts_agree_pct"] >= 95.0, out
    assert out["joint, shuffled pairs: within_frame_pct"] < 60.0, out
    assert out["joint, shuffled pairs: median_ms"] > 3 * out["joint: median_ms"], out


def test_video_to_audio_many_gives_one_sound_per_clip_independent_of_batch():
    pipe = tiny_av_pipeline()
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 255, size=(8, 8, 8, 3), dtype=np.uint8) for _ in range(3)]
    prompts = ["a thud", "a beep", "a clack"]
    waves = video_to_audio_many(pipe, clips, prompts, fps=8.0, batch=2)
    assert [w.shape for w in waves] == [(16_000,)] * 3
    alone = video_to_audio_many(pipe, clips[1:2], prompts[1:2], fps=8.0, seed=1)
    assert np.allclose(alone[0], waves[1], atol=1e-5)
    (single,) = pipe.video_to_audio(clips[2], "a clack", seed=2, fps=8.0)
    assert np.allclose(single.media.audio, waves[2], atol=1e-5)
