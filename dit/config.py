"""Typed model configuration: streams, sizes, rotary axes, and named size presets.

A model is a set of named streams (``text``, ``image``, ``video``, ``audio``, ...). Every
stream has its own weights; all streams meet in one joint attention per block. Every
invalid value raises ``ValueError`` naming the field and saying what to change.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

HEADS = ("none", "velocity", "logits")
PREDICTIONS = ("velocity", "x")  # what a velocity head outputs (StreamConfig.prediction)
X_PREDICTION_MIN_NOISE = 0.05  # 1 - t is clipped to this when x becomes a velocity (JiT)
MLP_ACTS = ("gelu", "gelu_tanh")  # exact GELU; the tanh form (SD3, FLUX.1)

# Rotary axes, in the order of the last dim of every position-id tensor. Time is in seconds on
# one axis shared by every stream, so an audio token and a video frame at the same instant get
# the same time phase; text tokens count along their own axis.
ROPE_AXES = ("text", "time", "y", "x")


def _fail(field_name: str, value: Any, fix: str) -> None:
    raise ValueError(f"{field_name}={value!r} is invalid: {fix}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class StreamConfig:
    """One token stream: its input width, and which head (if any) reads it out.

    in_dim: features per input token (C * p * p for image patches, text-encoder width for
        text, mel bins * frames for audio). Ignored by ``logits`` streams, which read codes.
    head: ``none`` (condition only, e.g. text), ``velocity`` (flow matching) or ``logits``
        (masked decoding over ``codebook_size`` codes; the input gets a learned mask token).
    levels: a ``logits`` stream's FSQ levels, to factorise its codes (dit/codes.py): the input
        is a sum of one embedding per level and the head one softmax per level, ``sum(levels)``
        outputs instead of ``codebook_size`` (``prod(levels)``). () = one embedding row and
        one logit per code.
    prediction: what a ``velocity`` head's output means. ``velocity`` (v = data - noise), or
        ``x``: the clean data, turned into the velocity it implies inside ``DiT.forward``
        (v = (x - x_t) / (1 - t)), so losses and solvers still see velocities (JiT, Li & He
        2025: predicting the clean signal works where tokens are wider than the model).
    """

    name: str
    in_dim: int = 0
    head: str = "velocity"
    codebook_size: int = 0
    levels: tuple[int, ...] = ()
    prediction: str = "velocity"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            _fail("stream.name", self.name, "use a Python identifier such as 'image' or 'text'")
        if self.head not in HEADS:
            _fail(f"stream[{self.name}].head", self.head, f"choose one of {HEADS}")
        if not isinstance(self.levels, list | tuple):
            _fail(f"stream[{self.name}].levels", self.levels, "give a list of FSQ level counts")
        object.__setattr__(self, "levels", tuple(self.levels))  # JSON gives a list
        if self.prediction not in PREDICTIONS:
            _fail(
                f"stream[{self.name}].prediction", self.prediction, f"choose one of {PREDICTIONS}"
            )
        if self.prediction != "velocity" and self.head != "velocity":
            _fail(
                f"stream[{self.name}].prediction",
                self.prediction,
                "only a 'velocity' head can predict 'x'; use 'velocity'",
            )
        if self.head == "logits":
            if not _is_int(self.codebook_size) or self.codebook_size < 2:
                _fail(
                    f"stream[{self.name}].codebook_size",
                    self.codebook_size,
                    "a logits stream needs an integer codebook_size >= 2",
                )
            levels = self.levels
            if levels and (
                not all(_is_int(n) and n >= 2 for n in levels)
                or math.prod(levels) != self.codebook_size
            ):
                _fail(
                    f"stream[{self.name}].levels",
                    self.levels,
                    "give the FSQ level counts "
                    f"(each >= 2) whose product is codebook_size={self.codebook_size}, or ()",
                )
        else:
            if not _is_int(self.in_dim) or self.in_dim < 1:
                _fail(f"stream[{self.name}].in_dim", self.in_dim, "use an integer >= 1")
            if self.levels:
                _fail(
                    f"stream[{self.name}].levels",
                    self.levels,
                    "only a 'logits' stream has levels; set them to ()",
                )
            if self.codebook_size != 0:
                _fail(
                    f"stream[{self.name}].codebook_size",
                    self.codebook_size,
                    "only a 'logits' stream has a codebook; set it to 0",
                )

    @property
    def discrete(self) -> bool:
        return self.head == "logits"

    @property
    def out_dim(self) -> int:
        """Width of this stream's head output: velocity features, code or level logits."""
        if self.levels:
            return sum(self.levels)
        return self.codebook_size if self.discrete else self.in_dim


# Sizes only; the streams are chosen per model. Every stream has its own block weights (as in
# MMDiT), so counts are for the usual pair, one generated stream plus a text stream; the
# larger presets halve the depth of their single-stream namesakes to land at their size.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(width=32, depth=2, heads=2),  # ~90k params: tests
    "xs": dict(width=128, depth=4, heads=2),  # ~2.5M: models trained on two CPU cores
    "s": dict(width=192, depth=6, heads=3),  # ~8M: bundled CPU models (16 MB in fp16)
    "b": dict(width=512, depth=12, heads=8),  # ~115M
    "l": dict(width=960, depth=12, heads=15),  # ~400M
    "xl": dict(width=1152, depth=14, heads=16),  # ~690M: DiT-XL width and heads
}


@dataclass(frozen=True)
class DiTConfig:
    """Everything that fixes a model's shapes: ``DiTConfig.preset(name, streams=...)``."""

    streams: tuple[StreamConfig, ...]
    width: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    pooled_dim: int = 0  # width of a pooled condition added to the modulation input; 0 = none
    freq_dim: int = 256  # sinusoidal timestep features
    rope_dims: tuple[int, ...] = ()  # per-axis rotary dims (sum = head dim); () = split evenly
    rope_theta: float = 10_000.0
    # Positions are multiplied by these before the rotary phases: time is in seconds, so 25
    # puts one video frame at 25 fps one unit apart; text, y and x are already integer indices.
    rope_scales: tuple[float, ...] = (1.0, 25.0, 1.0, 1.0)
    qk_norm: bool = True
    eps: float = 1e-6
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (codec, data, ...)
    # The name of a stream of video frames to run factorised (dit/temporal.py): the joint
    # blocks on each frame, a zero-initialised temporal attention after each. "" = none.
    temporal: str = ""
    # --- options for imported architectures (dit/from_diffusers.py); defaults = off ---------
    mlp_act: str = "gelu"  # the MLPs' GELU: exact ("gelu") or the tanh form ("gelu_tanh")
    # Side M of an absolute (M*M, width) position table added to every generated stream's
    # tokens, centre-cropped to their (y, x) grid (SD3's cropped sin-cos PatchEmbed); 0 = none.
    pos_table: int = 0
    # Blocks in which each generated stream also attends among its own tokens with a second
    # set of weights, from the same norm (SD3.5 Medium's MMDiT-X "dual attention").
    dual_attention: tuple[int, ...] = ()
    # Single-stream blocks after the joint ones (FLUX.1): every stream's tokens through one
    # set of weights, attention and MLP in parallel from one modulated norm.
    single_depth: int = 0
    # A guidance-strength input embedded like the time and added to it (FLUX.1 dev).
    guidance_embed: bool = False

    def __post_init__(self) -> None:
        self._check_streams()
        self._check_sizes()
        self._check_rope()
        self._check_options()

    def _check_streams(self) -> None:
        streams = self.streams
        if isinstance(streams, (list, tuple)):
            streams = tuple(StreamConfig(**s) if isinstance(s, dict) else s for s in streams)
            object.__setattr__(self, "streams", streams)
        if not isinstance(streams, tuple) or not streams:
            _fail("streams", self.streams, "give at least one StreamConfig")
        if not all(isinstance(s, StreamConfig) for s in streams):
            _fail("streams", self.streams, "every stream must be a StreamConfig or a dict of one")
        names = [s.name for s in streams]
        if len(set(names)) != len(names):
            _fail("streams", names, "stream names must be unique")
        if all(s.head == "none" for s in streams):
            _fail("streams", names, "at least one stream needs a 'velocity' or 'logits' head")

    def _check_sizes(self) -> None:
        for name in ("width", "depth", "heads", "freq_dim"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1 or v > 1 << 16:
                _fail(name, v, "use an integer between 1 and 65536")
        if self.width % self.heads:
            _fail("width", self.width, f"must be divisible by heads={self.heads}")
        head_dim = self.width // self.heads
        if head_dim % 2:
            _fail("heads", self.heads, f"width/heads={head_dim} must be even for rotary embeddings")
        if self.freq_dim % 2:
            _fail("freq_dim", self.freq_dim, "use an even number")
        if not _is_real(self.mlp_ratio) or not 0 < self.mlp_ratio <= 64:
            _fail("mlp_ratio", self.mlp_ratio, "use a finite number in (0, 64]")
        if int(self.width * self.mlp_ratio) < 1:
            _fail("mlp_ratio", self.mlp_ratio, "width * mlp_ratio must be at least 1")
        if not _is_int(self.pooled_dim) or self.pooled_dim < 0:
            _fail("pooled_dim", self.pooled_dim, "use an integer >= 0 (0 = no pooled condition)")
        if not _is_real(self.rope_theta) or self.rope_theta <= 1:
            _fail("rope_theta", self.rope_theta, "use a finite number > 1")
        if not _is_real(self.eps) or not 0 < self.eps < 1:
            _fail("eps", self.eps, "use a small positive number such as 1e-6")
        if not isinstance(self.qk_norm, bool):
            _fail("qk_norm", self.qk_norm, "use True or False")

    def _check_rope(self) -> None:
        head_dim = self.width // self.heads
        n_axes = len(ROPE_AXES)
        scales = tuple(self.rope_scales)
        if len(scales) != n_axes or not all(_is_real(s) and s > 0 for s in scales):
            _fail("rope_scales", self.rope_scales, f"give {n_axes} positive numbers {ROPE_AXES}")
        object.__setattr__(self, "rope_scales", scales)
        dims = tuple(self.rope_dims) or _even_split(head_dim, n_axes)
        if len(dims) != n_axes or not all(_is_int(d) and d >= 0 and d % 2 == 0 for d in dims):
            _fail("rope_dims", self.rope_dims, f"give {n_axes} even integers, one per {ROPE_AXES}")
        if sum(dims) not in (0, head_dim):
            _fail(
                "rope_dims",
                dims,
                f"must sum to the head dim width/heads={head_dim} (or be "
                "all 0: no rotary positions, as in SD3)",
            )
        object.__setattr__(self, "rope_dims", dims)

    def _check_options(self) -> None:
        if self.mlp_act not in MLP_ACTS:
            _fail("mlp_act", self.mlp_act, f"choose one of {MLP_ACTS}")
        if not _is_int(self.pos_table) or not 0 <= self.pos_table <= 4096:
            _fail("pos_table", self.pos_table, "give the table's side (0 = none, at most 4096)")
        dual = tuple(self.dual_attention)
        if not all(_is_int(i) and 0 <= i < self.depth for i in dual) or len(set(dual)) < len(dual):
            _fail(
                "dual_attention",
                self.dual_attention,
                f"give distinct block indices in [0, depth={self.depth})",
            )
        object.__setattr__(self, "dual_attention", dual)
        if not _is_int(self.single_depth) or not 0 <= self.single_depth <= 1 << 16:
            _fail("single_depth", self.single_depth, "use an integer >= 0")
        if not isinstance(self.guidance_embed, bool):
            _fail("guidance_embed", self.guidance_embed, "use True or False")
        if not isinstance(self.extra, dict):
            _fail("extra", self.extra, "use a dict")
        if not isinstance(self.temporal, str):
            _fail("temporal", self.temporal, "name a stream, or '' for none")
        if self.temporal:
            generated = [s.name for s in self.streams if s.head != "none"]
            if generated != [self.temporal] or self.stream(self.temporal).discrete:
                _fail(
                    "temporal",
                    self.temporal,
                    f"name the one velocity stream of {generated} "
                    "(a temporal model generates one stream of frames), or leave it ''",
                )
            if self.dual_attention or self.single_depth:
                _fail(
                    "temporal",
                    self.temporal,
                    "a temporal model has neither dual attention "
                    "nor single-stream blocks; leave it '' or drop those",
                )

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def mlp_dim(self) -> int:
        return int(self.width * self.mlp_ratio)

    def stream(self, name: str) -> StreamConfig:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(f"no stream {name!r}; this model has {[s.name for s in self.streams]}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DiTConfig:
        if name not in PRESETS:
            raise ValueError(f"preset={name!r} is unknown: choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (what diffusers' ConfigMixin stores in config.json)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["streams"] = [asdict(s) for s in self.streams]
        d["rope_dims"] = list(self.rope_dims)
        d["rope_scales"] = list(self.rope_scales)
        d["dual_attention"] = list(self.dual_attention)
        return d

    def replace(self, **changes: Any) -> DiTConfig:
        return replace(self, **changes)


def _even_split(total: int, parts: int) -> tuple[int, ...]:
    """Split ``total`` (even) into ``parts`` even dims, the remainder going to the first axes."""
    pairs = total // 2
    base, rest = divmod(pairs, parts)
    return tuple(2 * (base + (i < rest)) for i in range(parts))
