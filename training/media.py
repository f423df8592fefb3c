"""What the trainer needs to know of a modality: the model spec the export carries, how a
batch of source items becomes tokens with positions, and each step's random draws.

The token layout itself is the pipelines' own (``pipelines/modality.py``, built from the
spec), so a model trains on exactly the tokens it will be sampled in. One adapter per
modality; the trainer loop, the objective and the export are shared.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from conditioning.mel import MelCodec
from dit import StreamConfig
from dit.flow import frame_noise, logit_normal_t
from dit.masked import random_mask, span_mask
from dit.tree import tree_map
from pipelines.modality import StreamTokens, streams_of
from pipelines.spec import ModelSpec, resolve_autoencoder

from .recipe import Recipe


class Media:
    """The generated streams of a recipe, and each step's flow times.

    ``streams``: name -> its token definition (pipelines/modality.py), built from the spec the
    export will carry, so training lays tokens out exactly as the pipelines will.
    """

    stream: str  # the first (or only) stream
    streams: dict[str, StreamTokens]

    def _spec(self, modality: str, extra: dict | None = None, **fields) -> ModelSpec:
        """The spec every export carries: the recipe's name, objective, defaults and data."""
        r = self.recipe
        return ModelSpec(
            name=r.name,
            modality=modality,
            objective=r.objective,
            defaults=dict(r.defaults),
            extra={"data": r.data, **(extra or {})},
            **fields,
        )

    def _define_streams(self) -> None:
        self.streams = streams_of(self.spec())
        self.stream = next(iter(self.streams))

    def times(self, b: int, g: torch.Generator) -> torch.Tensor:
        """(B,) training times of a step's global batch (SD3's logit-normal, mean t_mean)."""
        return logit_normal_t(b, mean=self.recipe.t_mean, generator=g)

    def stream_configs(self) -> list[StreamConfig]:
        return [
            StreamConfig(name, s.dim, prediction=self.recipe.prediction)
            for name, s in self.streams.items()
        ]

    def draws(self, first, b: int, g: torch.Generator) -> tuple:
        """A step's random draws for the whole global batch, given one item's tokens
        ``first``: flow's noise (like the tokens) and times, in that order."""
        noise = tree_map(lambda x: torch.randn((b, *x.shape[1:]), generator=g), first)
        return noise, self.times(b, g)


class ImageMedia(Media):
    """Items are images (3, H, W) in [-1, 1]; tokens are p x p pixel patches."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self._define_streams()

    def tokens(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> tokens (B, N, 3 p p) and positions (N, 4)."""
        image = self.streams["image"]
        return image.encode(batch), image.layout(*batch.shape[-2:]).positions

    def spec(self) -> ModelSpec:
        r = self.recipe
        return self._spec("image", channels=3, patch=r.patch, width=r.size, height=r.size)


class AudioMedia(Media):
    """Items are mel tokens (N, frames_per_token * n_mels), already encoded by the source."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe, self.codec = recipe, MelCodec(**recipe.codec)
        self._define_streams()

    def tokens(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, D) tokens -> the same, and positions (N, 4) with time in seconds."""
        return batch, self.streams["audio"].layout_of(batch.shape[1]).positions

    def spec(self) -> ModelSpec:
        r, c = self.recipe, self.codec
        return self._spec(
            "audio",
            {"codec": c.to_dict()},
            channels=1,
            seconds=r.seconds,
            patch=r.codec.get("frames_per_token", c.frames_per_token),
            sample_rate=c.sample_rate,
        )


class VideoMedia(Media):
    """Items are clips (F, 3, H, W) in [-1, 1]; tokens are tpatch x p x p pixel tubelets whose
    positions carry time in seconds at the recipe's fps."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self._define_streams()

    def tokens(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F, 3, H, W) -> tokens (B, N, 3 q p p) and positions (N, 4)."""
        video = self.streams["video"]
        frames, height, width = batch.shape[1], *batch.shape[-2:]
        return video.encode(batch), video.layout(frames, height, width, self.recipe.fps).positions

    def draws(self, first, b: int, g: torch.Generator) -> tuple:
        share = self.recipe.frame_noise_share
        if not share:
            return super().draws(first, b, g)
        frames = round(self.recipe.seconds * self.recipe.fps)
        return frame_noise((b, *first.shape[1:]), frames, share, g), self.times(b, g)

    def spec(self) -> ModelSpec:
        r = self.recipe
        extra = {"frame_noise_share": r.frame_noise_share} if r.frame_noise_share else {}
        return self._spec(
            "video",
            extra,
            channels=3,
            patch=r.patch,
            width=r.size,
            height=r.size,
            seconds=r.seconds,
            fps=r.fps,
            tpatch=r.tpatch,
        )


class AudioVideoMedia(VideoMedia):
    """Items are {"video": clip (F, 3, H, W), "audio": mel tokens (N, D)} of one duration; both
    streams' positions carry seconds on one axis. Each item is trained jointly (both streams
    noised to one t), or with one stream given clean (t = 1, no loss on it): the same model
    then also does video-to-audio and audio-to-video."""

    # shares of items trained joint / video given (video-to-audio) / audio given
    MODES = (0.6, 0.2, 0.2)

    def __init__(self, recipe: Recipe) -> None:
        self.recipe, self.codec = recipe, MelCodec(**recipe.codec)
        self._define_streams()

    def tokens(self, batch: dict[str, torch.Tensor]) -> tuple[dict, dict]:
        """{"video": (B, F, 3, H, W), "audio": (B, N_a, D_a)} -> tokens and positions per
        stream."""
        video, video_pos = super().tokens(batch["video"])
        audio = batch["audio"]
        audio_pos = self.streams["audio"].layout_of(audio.shape[1]).positions
        return {"video": video, "audio": audio}, {"video": video_pos, "audio": audio_pos}

    def times(self, b: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        t = logit_normal_t(b, mean=self.recipe.t_mean, generator=g)
        mode = torch.rand(b, generator=g)
        joint, v2a, _ = self.MODES
        video_given = (mode >= joint) & (mode < joint + v2a)
        audio_given = mode >= joint + v2a
        one = torch.ones_like(t)
        return {
            "video": torch.where(video_given, one, t),
            "audio": torch.where(audio_given, one, t),
        }

    def spec(self) -> ModelSpec:
        video = super().spec()  # frame_noise_share is a video-only recipe field
        return replace(
            video,
            modality="audio+video",
            sample_rate=self.codec.sample_rate,
            extra={**video.extra, "codec": self.codec.to_dict()},
        )


class MaskedMedia(Media):
    """A masked recipe's stream: the base modality's items as FSQ codes (B, N), each code in
    the place of one flow token (same positions); each step masks a schedule-drawn share of
    them (whole spans of ``recipe.span`` codes: MAGNeT)."""

    def __init__(self, base: Media, recipe: Recipe) -> None:
        from conditioning.fsq import FSQAutoencoder

        if base.stream not in ("image", "audio"):
            raise ValueError(
                f"recipe objective=masked: {recipe.modality} is not supported; "
                "use an image or audio recipe"
            )
        self.base, self.recipe = base, recipe
        self.stream, self.streams = base.stream, base.streams
        fp32 = {"torch_dtype": torch.float32}
        folder = resolve_autoencoder(recipe.autoencoder)
        self.autoencoder = FSQAutoencoder.from_pretrained(folder, **fp32).eval()
        self.autoencoder.requires_grad_(False)
        per_token = recipe.patch if base.stream == "image" else base.codec.frames_per_token
        if self.autoencoder.factor != per_token:
            raise ValueError(
                f"autoencoder {recipe.autoencoder} codes cover "
                f"{self.autoencoder.factor} pixels / frames, the recipe's tokens "
                f"{per_token}: make them "
                "equal (patch, or codec frames_per_token)"
            )
        if base.stream == "audio" and self.autoencoder.config.codec != base.codec.to_dict():
            raise ValueError(
                f"autoencoder {recipe.autoencoder} was trained on mel settings "
                f"{self.autoencoder.config.codec}, the recipe's codec makes "
                f"{base.codec.to_dict()}: use the same codec"
            )

    def stream_configs(self) -> list[StreamConfig]:
        k = self.autoencoder.codebook_size
        levels = tuple(self.autoencoder.config.levels) if self.recipe.factorised_codes else ()
        return [StreamConfig(self.stream, head="logits", codebook_size=k, levels=levels)]

    @torch.no_grad()
    def tokens(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) or mel tokens (B, N, D) -> codes (B, N) long, positions (N, 4)."""
        _, positions = self.base.tokens(batch)
        media = self.base.codec.from_tokens(batch) if self.stream == "audio" else batch
        return self.autoencoder.encode(media).flatten(1), positions

    def draws(self, first, b: int, g: torch.Generator) -> tuple:
        n = first.shape[1]
        if self.recipe.span > 1:
            return (span_mask(b, n, self.recipe.span, self.recipe.mask_schedule, generator=g),)
        return (random_mask(b, n, self.recipe.mask_schedule, generator=g),)

    def spec(self) -> ModelSpec:
        r, solver = self.recipe, "magnet" if self.recipe.span > 1 else "maskgit"
        base = self.base.spec()
        return replace(
            base,
            objective="masked",
            defaults={"solver": solver, **r.defaults},
            limits={**base.limits, "solvers": [solver]},
            extra={
                **base.extra,
                "autoencoder": r.autoencoder,
                "masked": {"schedule": r.mask_schedule, "span": r.span},
            },
        )


MEDIA = {
    "image": ImageMedia,
    "audio": AudioMedia,
    "video": VideoMedia,
    "audio+video": AudioVideoMedia,
}


def media_of(recipe: Recipe) -> Media:
    media = MEDIA[recipe.modality](recipe)
    return MaskedMedia(media, recipe) if recipe.objective == "masked" else media
