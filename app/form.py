"""The studio page's form: its field names, and its values -> a :class:`Request`.

No Gradio here: what a page sends is checked the same way whatever draws the page.
"""

from __future__ import annotations

import math
from typing import Any

from pipelines.request import Request, RequestError, _finite, _is_number, _lora_pairs

FORM = (
    "model",
    "prompt",
    "negative_prompt",
    "seed",
    "random_seed",
    "steps",
    "guidance",
    "solver",
    "width",
    "height",
    "num_outputs",
    "duration",
    "fps",
    "audio_guidance",
    "loras",
)


def _whole(name: str, value: Any) -> int:
    """Sliders and number boxes send floats; the request schema wants whole numbers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise RequestError(f"{name}={value!r} is invalid: use a whole number")


def _number(name: str, value: Any) -> float:
    """A number box's value (gradio_client may send text) -> float, or a RequestError."""
    if isinstance(value, bool):
        raise RequestError(f"{name}={value!r} is invalid: use a number")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise RequestError(f"{name}={value!r} is invalid: use a number") from None


def parse_loras(text: str | None) -> tuple[tuple[str, float], ...]:
    """ "teal:0.8, other" -> (("teal", 0.8), ("other", 1.0)): names the studio offers."""
    if text is not None and not isinstance(text, str):
        raise RequestError(f"loras={text!r}: write name:scale pairs as text, e.g. teal:0.8")
    pairs = []
    for item in (text or "").replace("\n", ",").split(","):
        if not item.strip():
            continue
        name, _, scale = item.strip().partition(":")
        try:
            pairs.append((name.strip(), float(scale) if scale.strip() else 1.0))
        except ValueError:
            raise RequestError(f"LoRA {item.strip()!r}: write name:scale, e.g. teal:0.8") from None
    return tuple(pairs)


def _seed(value: Any) -> int | None:
    """The seed field: a whole number >= 0, or -1 for a random one (AUTOMATIC1111's)."""
    seed = _whole("seed", value)
    if seed == -1:
        return None
    if seed < 0:
        raise RequestError(f"seed={seed}: use a whole number >= 0, or -1 for a random seed")
    return seed


def form_request(values: dict[str, Any]) -> Request:
    """The form's values -> a Request (not yet resolved against the model)."""
    if values["seed"] is None and not values["random_seed"]:
        raise RequestError("seed is empty: type a number or tick 'random'")

    def whole_or_none(name: str) -> int | None:
        return None if values.get(name) is None else _whole(name, values[name])

    def number_or_none(name: str) -> float | None:
        return None if values.get(name) is None else _number(name, values[name])

    return Request(
        duration=number_or_none("duration"),
        fps=number_or_none("fps"),
        audio_guidance=number_or_none("audio_guidance"),
        prompt=values["prompt"] or "",
        negative_prompt=values["negative_prompt"] or "",
        seed=None if values["random_seed"] else _seed(values["seed"]),
        steps=_whole("steps", values["steps"]),
        guidance=number_or_none("guidance") if values["guidance"] is not None else math.nan,
        solver=values["solver"],
        width=whole_or_none("width"),
        height=whole_or_none("height"),
        num_outputs=_whole("num_outputs", values["num_outputs"]),
        model=values["model"],
        loras=parse_loras(values.get("loras")),
    )


WHOLE = ("seed", "steps", "width", "height", "num_outputs")
NUMBER = ("guidance", "duration", "fps", "audio_guidance")
TEXT = ("model", "prompt", "negative_prompt", "solver")


def replayed(settings: Any) -> tuple[dict[str, Any], tuple[tuple[str, float], ...]]:
    """A studio file's settings (untrusted: anyone can edit a PNG's text chunk) -> the form's
    values it holds and its (adapter, scale) pairs; a value of the wrong kind is a
    :class:`RequestError` naming the field, never a formatting error later."""
    if not isinstance(settings, dict):
        raise RequestError("the file's settings are not a JSON object")
    values: dict[str, Any] = {}
    for k in (*WHOLE, *NUMBER, *TEXT):
        v = settings.get(k)
        if v is None:
            continue
        if k in WHOLE and (not isinstance(v, int) or isinstance(v, bool)):
            raise RequestError(f"{k}={v!r} in the file is not a whole number")
        if k in NUMBER and (not _is_number(v) or not _finite(v)):
            raise RequestError(f"{k}={v!r} in the file is not a finite number")
        if k in TEXT and not isinstance(v, str):
            raise RequestError(f"{k}={v!r} in the file is not text")
        values[k] = v
    loras = _lora_pairs(settings.get("loras") or ())
    for path, scale in loras:
        if not isinstance(path, str) or not _is_number(scale) or not _finite(scale):
            raise RequestError(f"LoRA {path!r}: scale={scale!r} in the file is not a number")
    return values, loras
