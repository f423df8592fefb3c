"""One entry to every world's evaluation: a pipeline is scored by the evaluation of the world
its model was trained on (``spec.extra["data"]``), found in ``EVALUATIONS``; a model of any
other world is refused with the list. ``dit-studio eval`` and ``training.curve`` both come
through here, so a curve's rows are the numbers ``eval`` prints."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module


def _shapes(pipe, n, phrasings, **settings) -> dict:
    return import_module("training.eval_shapes").evaluate_shapes(
        pipe, n=n, phrasings=phrasings, **settings
    )


def _digits(pipe, n, phrasings, **settings) -> dict:
    return import_module("training.eval_digits").evaluate_digits(
        pipe, n_per_digit=max(1, n // 10), phrasings=phrasings, **settings
    )


def _sounds(pipe, n, phrasings, **settings) -> dict:
    return import_module("training.eval_sounds").evaluate_sounds(
        pipe, n=n, phrasings=phrasings, **settings
    )


def _motion(pipe, n, phrasings, fps=None, **settings) -> dict:
    return import_module("training.eval_motion").evaluate_motion(
        pipe, n=n, fps=fps, phrasings=phrasings, **settings
    )


def _bounce(pipe, n, phrasings, fps=None, **settings) -> dict:
    return import_module("training.eval_audiovideo").evaluate_audiovideo(
        pipe, n=n, fps=fps, **settings
    )


# world (a recipe's `data`) -> its evaluation (pipe, n, phrasings, **settings) -> scores
EVALUATIONS: dict[str, Callable[..., dict]] = {
    "shapes": _shapes,
    "digits": _digits,
    "sounds": _sounds,
    "motion": _motion,
    "bounce": _bounce,
}
TAKES_FPS = ("motion", "bounce")


def evaluate(
    pipe,
    n: int,
    phrasings: tuple[str, ...] = ("canonical", "train", "heldout"),
    steps: int | None = None,
    solver: str | None = None,
    guidance: float | None = None,
    fps: float | None = None,
) -> dict:
    """Scores of ``pipe`` on ``n`` held-out prompts of its world (keys as the world's
    evaluation names them: ``"<phrasing> <metric>"`` and ``"real <metric>"``)."""
    data = pipe.spec.extra.get("data")
    if data not in EVALUATIONS:
        raise ValueError(
            f"model {pipe.spec.name!r} was trained on data={data!r}, which has no "
            f"evaluation; the worlds with one: {sorted(EVALUATIONS)}"
        )
    settings = dict(steps=steps, solver=solver, guidance=guidance)
    if data in TAKES_FPS:
        settings["fps"] = fps
    elif fps is not None:
        raise ValueError(f"--fps is for video models; {pipe.spec.name!r} is a {data} model")
    return EVALUATIONS[data](pipe, n, phrasings, **settings)
