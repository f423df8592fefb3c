"""One request format for the CLI, the web app and the batch runner: one schema, one validation,
one place for limits."""

from __future__ import annotations

import math
import secrets
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


class RequestError(ValueError):
    """A request the studio will not run; the message names the field and the fix."""


@dataclass(frozen=True)
class Limits:
    """What a model (or a server) accepts. The app narrows a model's limits with its own."""

    min_side: int = 8
    max_side: int = 256  # 0: the model has no width and height (audio)
    multiple: int = 1  # sides must be multiples of the patch size
    max_pixels: int = 256 * 256
    max_seconds: float = 0.0  # 0: the model has no duration (images)
    sample_rates: tuple[int, ...] = ()  # audio models: the rate they make
    max_fps: float = 0.0  # 0: the model makes no video
    frame_multiple: int = 1  # video: frame counts are multiples of the tubelet length
    max_steps: int = 200
    max_outputs: int = 16
    max_prompt_bytes: int = 4096
    solvers: tuple[str, ...] = ("euler", "heun", "midpoint", "maskgit", "magnet")

    def narrow(self, other: Limits) -> Limits:
        """The stricter of two sets of limits."""
        return Limits(
            min_side=max(self.min_side, other.min_side),
            max_side=min(self.max_side, other.max_side),
            multiple=math.lcm(self.multiple, other.multiple),
            max_pixels=min(self.max_pixels, other.max_pixels),
            max_seconds=min(self.max_seconds, other.max_seconds),
            sample_rates=self.sample_rates or other.sample_rates,
            max_fps=min(self.max_fps, other.max_fps),
            frame_multiple=math.lcm(self.frame_multiple, other.frame_multiple),
            max_steps=min(self.max_steps, other.max_steps),
            max_outputs=min(self.max_outputs, other.max_outputs),
            max_prompt_bytes=min(self.max_prompt_bytes, other.max_prompt_bytes),
            solvers=tuple(s for s in self.solvers if s in other.solvers),
        )


@dataclass(frozen=True)
class Request:
    """What to generate. ``None`` means "the model's default" until :meth:`resolve`."""

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    solver: str | None = None
    width: int | None = None
    height: int | None = None
    num_outputs: int = 1
    model: str | None = None
    duration: float | None = None  # seconds (audio, video)
    sample_rate: int | None = None  # Hz (audio); must be the model's own
    fps: float | None = None  # frames per second (video); any rate up to the model's limit
    audio_guidance: float | None = None  # audio+video: the audio stream's scale (default: guidance)
    loras: tuple[tuple[str, float], ...] = ()  # (adapter folder or name, scale), all at once

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Request:
        if not isinstance(data, dict):
            raise RequestError(f"a request must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RequestError(f"unknown fields {unknown}; known fields: {sorted(known)}")
        if "prompt" not in data:
            raise RequestError("prompt is missing: give the text to generate from")
        if "loras" in data:
            data = {**data, "loras": _lora_pairs(data["loras"])}
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolve(self, defaults: dict[str, Any], limits: Limits) -> Request:
        """Fill defaults, draw a seed if none, and validate against ``limits``."""
        filled = {k: v for k, v in defaults.items() if getattr(self, k, None) is None}
        req = replace(self, **filled)
        if req.seed is None:
            req = replace(req, seed=secrets.randbelow(2**31))
        req.validate(limits)
        return req

    def validate(self, limits: Limits) -> None:
        _text("prompt", self.prompt, limits.max_prompt_bytes)
        _text("negative_prompt", self.negative_prompt, limits.max_prompt_bytes)
        _int("seed", self.seed, 0, 2**63 - 1)
        _int("steps", self.steps, 1, limits.max_steps)
        _int("num_outputs", self.num_outputs, 1, limits.max_outputs)
        if not _is_number(self.guidance) or not _finite(self.guidance):
            raise RequestError(f"guidance={self.guidance!r} is invalid: use a finite number")
        if not 0 <= self.guidance <= 50:
            raise RequestError(f"guidance={self.guidance} is out of range: use 0 to 50 (1 = off)")
        if self.audio_guidance is not None and (
            not _is_number(self.audio_guidance) or not 0 <= self.audio_guidance <= 50
        ):
            raise RequestError(
                f"audio_guidance={self.audio_guidance!r} is invalid: use a number "
                "from 0 to 50, or leave it unset (= guidance)"
            )
        if self.solver not in limits.solvers:
            raise RequestError(f"solver={self.solver!r} is unknown: choose one of {limits.solvers}")
        if self.model is not None and not isinstance(self.model, str):
            raise RequestError(f"model={self.model!r} is invalid: give a model name or folder")
        _validate_loras(self.loras)
        self._validate_time(limits)
        if limits.max_side == 0:
            for side in ("width", "height"):
                if getattr(self, side) is not None:
                    raise RequestError(
                        f"{side}={getattr(self, side)!r}: this model has no "
                        "width or height; leave it unset"
                    )
            return
        for side in ("width", "height"):
            value = getattr(self, side)
            _int(side, value, limits.min_side, limits.max_side)
            if value % limits.multiple:
                raise RequestError(
                    f"{side}={value} is not a multiple of {limits.multiple} (the model's patch "
                    f"size): try {max(limits.multiple, value // limits.multiple * limits.multiple)}"
                )
        if self.width * self.height > limits.max_pixels:
            raise RequestError(
                f"{self.width}x{self.height} is {self.width * self.height} pixels; the limit is "
                f"{limits.max_pixels}: ask for a smaller size"
            )

    def frames(self) -> int:
        """Video frames of a resolved request: duration x fps (validated to be whole)."""
        return round(self.duration * self.fps)

    def _validate_time(self, limits: Limits) -> None:
        if limits.max_seconds == 0:
            for name in ("duration", "sample_rate", "fps"):
                if getattr(self, name) is not None:
                    raise RequestError(
                        f"{name}={getattr(self, name)!r}: this model makes images; leave it unset"
                    )
            return
        d = self.duration
        if not _is_number(d) or not _finite(d) or d <= 0:
            raise RequestError(f"duration={d!r} is invalid: give seconds > 0")
        if d < MIN_SECONDS:  # shorter would be an empty or one-token clip
            raise RequestError(f"duration={d:g} s is too short: ask for at least {MIN_SECONDS} s")
        if d > limits.max_seconds:
            raise RequestError(
                f"duration={d} s is beyond this model's limit of {limits.max_seconds} s: "
                "ask for less"
            )
        if self.sample_rate is not None and not limits.sample_rates:
            raise RequestError(
                f"sample_rate={self.sample_rate!r}: this model makes no sound; leave it unset"
            )
        if self.sample_rate is not None and self.sample_rate not in limits.sample_rates:
            raise RequestError(
                f"sample_rate={self.sample_rate!r}: this model makes "
                f"{', '.join(map(str, limits.sample_rates))} Hz audio; ask for that or leave it "
                "unset"
            )
        self._validate_fps(limits)

    def _validate_fps(self, limits: Limits) -> None:
        if limits.max_fps == 0:
            if self.fps is not None:
                raise RequestError(f"fps={self.fps!r}: this model makes no video; leave it unset")
            return
        f = self.fps
        if not _is_number(f) or not _finite(f) or not 1 <= f <= limits.max_fps:
            raise RequestError(f"fps={f!r} is invalid: use 1 to {limits.max_fps:g} frames a second")
        frames, k = self.duration * f, limits.frame_multiple
        if abs(frames - round(frames)) > 1e-6 or round(frames) % k or round(frames) < k:
            n = max(k, round(frames / k) * k)
            raise RequestError(
                f"duration={self.duration} s at fps={f:g} is {frames:g} frames; this model "
                f"makes whole multiples of {k} frames: ask for duration={n / f:g} ({n} frames)"
            )


MAX_LORAS = 8
MIN_SECONDS = 0.1  # the shortest clip a request may ask for


def _lora_pairs(value: Any) -> tuple[tuple[str, float], ...]:
    """JSON's ``[{"path": p, "scale": s}, ...]`` or ``[[p, s], ...]`` (or bare paths, scale 1)."""
    if not isinstance(value, (list, tuple)):
        raise RequestError(f"loras={value!r}: give a list of {{'path': ..., 'scale': ...}}")
    pairs = []
    for item in value:
        if isinstance(item, str):
            item = (item, 1.0)
        elif isinstance(item, dict):
            if set(item) - {"path", "scale"} or "path" not in item:
                raise RequestError(f"loras item {item!r}: use keys 'path' and 'scale'")
            item = (item["path"], item.get("scale", 1.0))
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise RequestError(f"loras item {item!r}: give a path and a scale")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


def _validate_loras(loras: Any) -> None:
    """Their shape and scales; whether each adapter exists is for whoever loads it (the file
    system stays out of validation: ``spec.resolve_lora``)."""
    if not isinstance(loras, tuple):
        raise RequestError(f"loras={loras!r}: give (path, scale) pairs")
    if len(loras) > MAX_LORAS:
        raise RequestError(f"{len(loras)} LoRAs: at most {MAX_LORAS} at once")
    for path, scale in loras:
        if not isinstance(path, str):
            raise RequestError(f"LoRA {path!r}: give an adapter folder or a bundled name")
        if not _is_number(scale) or not _finite(scale) or abs(scale) > 4:
            raise RequestError(f"LoRA {path}: scale={scale!r}; use a number from -4 to 4")


def _finite(x: float) -> bool:
    """math.isfinite, but False (not OverflowError) for an int too large for a float."""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _int(name: str, value: Any, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError(f"{name}={value!r} is invalid: use a whole number from {lo} to {hi}")
    if not lo <= value <= hi:
        raise RequestError(f"{name}={value} is out of range: use {lo} to {hi}")


def _text(name: str, value: Any, max_bytes: int) -> None:
    if not isinstance(value, str):
        raise RequestError(f"{name} must be text, got {type(value).__name__}")
    n = len(value.encode("utf-8", errors="surrogatepass"))
    if n > max_bytes:
        raise RequestError(f"{name} is {n} bytes; the limit is {max_bytes}: shorten it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RequestError(f"{name} is not valid UTF-8 text ({e.reason})") from None
