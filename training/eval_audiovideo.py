"""Audio-video synchronisation of a joint model, measured from the pixels and the waveform.

For held-out scenes (every one a (colour, kind) pair training never saw) the model makes video
and sound together (joint), or sound for the scene's real rendered video (video-to-audio).
Each visual event (impact, light on, contact) is found in the frames, each sound onset in the
wave; the score is the time from each visual event to the nearest onset (median in ms, share
within one frame period) and whether the counts agree. The same metric on deliberately
shuffled pairs (video of clip i, sound of clip i + 1) shows what chance scores, and real
renders show what the scorer gives a perfectly synchronised clip. ``fps`` may differ from the
training rate: both streams' positions are seconds.
"""

from __future__ import annotations

import numpy as np

from pipelines.audio import decode_audio
from pipelines.audio_video import TextToAudioVideoPipeline
from pipelines.request import Request

from .world.audiovideo import caption, render_audio, render_video, sample_scene
from .world.score_audiovideo import (
    audio_onsets,
    score_av,
    shuffled,
    summarise_av,
    visual_events,
)

EVAL_SEED = 2468


def eval_scenes(n: int, seconds: float, seed: int = EVAL_SEED, split: str = "heldout"):
    rng = np.random.default_rng([seed, ("train", "heldout").index(split)])
    scenes = [sample_scene(rng, split, seconds=seconds) for _ in range(n)]
    return scenes, [caption(s, rng) for s in scenes]


def video_to_audio_many(
    pipe: TextToAudioVideoPipeline,
    videos: list[np.ndarray],
    prompts: list[str],
    fps: float,
    seed: int = 0,
    batch: int = 16,
    **settings,
) -> list[np.ndarray]:
    """Sound for each given clip (F, H, W, 3) uint8, batched; clip i gets seed ``seed + i``."""
    waves: list[np.ndarray] = []
    for start in range(0, len(videos), batch):
        chunk = videos[start : start + batch]
        req = pipe.resolve(
            Request(
                prompt="",
                seed=seed + start,
                num_outputs=len(chunk),
                duration=len(chunk[0]) / fps,
                fps=fps,
                **settings,
            )
        )
        tokens = pipe.video_tokens(np.stack(chunk))  # (B, N, D)
        given = {"video": (tokens, pipe.layout(req).positions)}
        audio = pipe.sample(req, prompts=prompts[start : start + batch], given=given)
        waves += decode_audio(pipe.codec, audio, req.duration)
    return waves


def evaluate_audiovideo(
    pipe: TextToAudioVideoPipeline,
    n: int = 200,
    steps: int | None = None,
    guidance: float | None = None,
    solver: str | None = None,
    fps: float | None = None,
    batch: int = 16,
    seed: int = 0,
) -> dict[str, float]:
    """Synchronisation (joint, video-to-audio, shuffled, real renders) on ``n`` held-out
    scenes at ``fps``."""
    spec = pipe.spec
    fps = fps or spec.fps
    frames, period = round(spec.seconds * fps), 1 / fps
    scenes, prompts = eval_scenes(n, spec.seconds)
    opts = dict(steps=steps, guidance=guidance, solver=solver)
    out: dict[str, float] = {"prompts": n, "fps": fps, "frame period ms": 1000 * period}

    def report(label: str, results: list[dict]) -> None:
        for k, v in summarise_av(results).items():
            out[f"{label}: {k}"] = v

    real_v = [render_video(s, frames, fps, spec.width) for s in scenes]
    real_a = [render_audio(s, spec.seconds) for s in scenes]
    report(
        "real renders",
        [score_av(v, a, fps, s) for v, a, s in zip(real_v, real_a, scenes, strict=True)],
    )

    joint = pipe.generate_many(
        prompts, seed=seed, batch=batch, desc="eval joint", duration=spec.seconds, fps=fps, **opts
    )
    results = [score_av(m.frames, m.audio, fps, s) for m, s in zip(joint, scenes, strict=True)]
    report("joint", results)
    pairs = [
        (visual_events(m.frames, fps, s.kind), audio_onsets(m.audio))
        for m, s in zip(joint, scenes, strict=True)
    ]
    report("joint, shuffled pairs", shuffled(pairs, period))

    waves = video_to_audio_many(pipe, real_v, prompts, fps, seed=seed, batch=batch, **opts)
    report(
        "video-to-audio",
        [score_av(v, w, fps, s) for v, w, s in zip(real_v, waves, scenes, strict=True)],
    )
    return out
