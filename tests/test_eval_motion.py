"""The motion evaluation's wiring: prompts, clips, fps and scores stay aligned."""

from pipelines.spec import ModelSpec
from training.eval_motion import eval_clips, evaluate_motion
from training.world.motion import render_clip


class Oracle:
    """A stand-in pipeline that renders the true clip of each prompt (optionally reversed in
    time): the evaluation must score it 100% (or fail its directions)."""

    def __init__(self, reverse: bool = False) -> None:
        self.spec = ModelSpec(
            name="oracle", modality="video", width=24, height=24, seconds=1.0, fps=8.0, tpatch=2
        )
        self.reverse = reverse
        self.asked: list[dict] = []

    def generate_many(self, prompts, seed=0, batch=16, desc=None, **settings):
        self.asked.append(settings)
        fps = settings["fps"]
        by_prompt = {}
        for split in ("heldout", "train"):
            for phrasing in ("canonical", "train", "heldout"):
                clips, texts = eval_clips(len(prompts), split, self.spec.seconds, phrasing=phrasing)
                by_prompt |= dict(zip(texts, clips, strict=True))
        videos = [
            render_clip(by_prompt[p], round(fps * settings["duration"]), fps, 24) for p in prompts
        ]
        return [v[::-1] for v in videos] if self.reverse else videos


def test_true_clips_score_full_marks_at_any_fps():
    for fps in (8.0, 12.0):
        pipe = Oracle()
        out = evaluate_motion(pipe, n=24, fps=fps)
        assert pipe.asked[0]["fps"] == fps and pipe.asked[0]["duration"] == 1.0
        gen = {k: v for k, v in out.items() if k.startswith("gen ")}
        assert gen and all(v == 100.0 for v in gen.values()), gen


def test_every_phrasing_scores_the_same_clips():
    out = evaluate_motion(Oracle(), n=16, phrasings=("canonical", "heldout"))
    for col in ("canonical", "heldout"):
        assert out[f"{col} unseen pairs: direction"] == 100.0, out
    canonical, _ = eval_clips(16, "heldout", 1.0, phrasing="canonical")
    heldout, words = eval_clips(16, "heldout", 1.0, phrasing="heldout")
    assert canonical == heldout and words != eval_clips(16, "heldout", 1.0)[1]


def test_clips_played_backwards_fail_their_directions():
    out = evaluate_motion(Oracle(reverse=True), n=24)
    assert out["gen unseen pairs: direction"] == 0.0
    assert out["real unseen pairs: direction"] == 100.0


def test_eval_clips_are_held_out_and_differ_from_training_draws():
    from training.world.motion import MotionDataset, is_heldout

    clips, _ = eval_clips(40, "heldout", 1.0)
    assert all(map(is_heldout, clips))
    seen, _ = eval_clips(40, "train", 1.0)
    assert not any(map(is_heldout, seen))
    train = [MotionDataset(40, seed=0)[i]["clip"] for i in range(40)]
    assert not set(seen) & set(train)  # evaluation draws its own clips
