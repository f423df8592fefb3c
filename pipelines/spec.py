"""What a model folder says about itself beyond its weights: modality, codec, sizes, defaults.

Stored under the ``studio`` key of the folder's ``model_index.json`` (diffusers' index file),
beside ``transformer/`` and ``text_encoder/``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .request import Limits, RequestError

INDEX = "model_index.json"
DEFAULT_MODEL = "shapes-t2i"  # what the CLI and the app use when no model is named
DEFAULT_AUDIO_MODEL = "sounds-t2a"  # `dit-studio generate --audio`
DEFAULT_VIDEO_MODEL = "motion-t2v"  # `dit-studio generate --video`
# modality -> the bundled model a request of that kind gets when it names none
DEFAULT_MODELS = {
    "image": DEFAULT_MODEL,
    "audio": DEFAULT_AUDIO_MODEL,
    "video": DEFAULT_VIDEO_MODEL,
}
ASSETS = Path(os.environ.get("DIT_STUDIO_ASSETS", Path(__file__).resolve().parents[1] / "assets"))


def bundled_models() -> list[str]:
    return sorted(p.parent.name for p in ASSETS.glob(f"*/{INDEX}"))


LORA_CONFIG = "adapter_config.json"  # what makes a folder a LoRA adapter (pipelines.lora)


def bundled_loras() -> list[str]:
    return sorted(p.parent.name for p in (ASSETS / "loras").glob(f"*/{LORA_CONFIG}"))


def resolve_lora(name_or_path: str) -> Path:
    """An adapter folder as given, or the bundled adapter of that name (``assets/loras``)."""
    path = Path(name_or_path)
    try:
        if (path / LORA_CONFIG).is_file():
            return path
        # SD3 / FLUX.1 LoRAs (pipelines/mmdit_lora.py): a diffusers or kohya .safetensors
        # file, or the folder diffusers' save_lora_weights writes
        if (path.is_file() and path.suffix == ".safetensors") or (
            path / "pytorch_lora_weights.safetensors"
        ).is_file():
            return path
        if (ASSETS / "loras" / name_or_path / LORA_CONFIG).is_file():
            return ASSETS / "loras" / name_or_path
    except OSError as e:  # a name too long for the file system, a folder we may not read
        raise RequestError(
            f"LoRA {name_or_path[:80]!r}...: {e.strerror}; give a bundled "
            "adapter name or an adapter folder's path"
        ) from None
    raise RequestError(
        f"LoRA {name_or_path!r} is neither an adapter folder (with {LORA_CONFIG}), a .safetensors "
        f"LoRA file (SD3 / FLUX.1 models) nor a bundled adapter; bundled: "
        f"{bundled_loras() or 'none installed'}"
    )


def resolve_autoencoder(name_or_path: str) -> Path:
    """An autoencoder folder as given, or the bundled one of that name (``assets/autoencoders``)."""
    path = Path(name_or_path)
    if (path / "config.json").is_file():
        return path
    if (ASSETS / "autoencoders" / name_or_path / "config.json").is_file():
        return ASSETS / "autoencoders" / name_or_path
    bundled = sorted(p.parent.name for p in (ASSETS / "autoencoders").glob("*/config.json"))
    raise ValueError(
        f"autoencoder {name_or_path!r} is neither an autoencoder folder (config.json "
        f"+ safetensors) nor a bundled one; bundled: {bundled or 'none'}"
    )


def resolve_model(name_or_path: str) -> Path:
    """A folder path as given, or the bundled model of that name."""
    path = Path(name_or_path)
    try:
        if (path / INDEX).is_file():
            return path
        if (ASSETS / name_or_path / INDEX).is_file():
            return ASSETS / name_or_path
    except OSError as e:  # a name too long for the file system, a folder we may not read
        raise RequestError(
            f"model {name_or_path[:80]!r}...: {e.strerror}; give a bundled "
            "model name or a model folder's path"
        ) from None
    raise RequestError(
        f"model {name_or_path!r} is neither a model folder nor a bundled model; "
        f"bundled: {bundled_models() or 'none installed'}"
    )


@dataclass(frozen=True)
class ModelSpec:
    name: str
    modality: str = "image"  # image | video | audio | audio+video
    objective: str = "flow"  # flow | masked
    channels: int = 3
    patch: int = 4
    width: int = 32  # training size; the default request size
    height: int = 32
    shift: float = 1.0  # flow time-grid shift at the training size
    seconds: float = 0.0  # audio / video: the longest training clip (0 for images)
    sample_rate: int = 0  # audio: Hz
    fps: float = 0.0  # video: the training frame rate (the default of a request)
    tpatch: int = 1  # video: frames per tubelet (frame counts are multiples of it)
    defaults: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def timed(self) -> bool:
        """True for media with a duration (audio, video), whose requests name seconds."""
        return self.modality in ("audio", "video", "audio+video")

    @property
    def sized(self) -> bool:
        """True for media with a width and height (image, video, audio+video)."""
        return self.modality in ("image", "video", "audio+video")

    def request_defaults(self) -> dict[str, Any]:
        base: dict[str, Any] = {"steps": 8, "guidance": 3.0, "solver": "heun"}
        if self.timed:
            base["duration"] = min(2.0, self.seconds)
        if self.sized:
            base.update(width=self.width, height=self.height)
        if self.fps:
            base.update(fps=self.fps, duration=self.seconds)
        return {**base, **self.defaults}

    def request_limits(self) -> Limits:
        # flow models: the ODE solvers; a masked model names its decoder in its own limits
        base: dict[str, Any] = {"solvers": ("euler", "heun", "midpoint")}
        if self.timed:  # lengths are free up to twice the longest training clip
            base.update(max_seconds=2 * self.seconds)
        if self.sample_rate:
            base.update(sample_rates=(self.sample_rate,))
        if self.sized:
            # twice the training side at most: beyond it a small model tiles its scene (a
            # shapes model at 96 x 96 draws a 3 x 3 grid of scenes), not a larger picture
            base.update(multiple=self.patch, max_side=2 * max(self.width, self.height))
        else:
            base.update(max_side=0)
        if self.fps:  # any rate from 1 fps to 4 x the training rate
            base.update(max_fps=4 * self.fps, frame_multiple=self.tpatch)
        merged = {**base, **self.limits}
        if "solvers" in merged:
            merged["solvers"] = tuple(merged["solvers"])
        return Limits(**merged)

    def to_index(
        self, class_name: str, text_encoder: str = "ByteTextEncoder", rewriter: bool = False
    ) -> dict[str, Any]:
        return {
            "_class_name": class_name,
            "transformer": ["dit", "DiT"],
            "text_encoder": ["conditioning", text_encoder],
            **(
                {"autoencoder": ["conditioning", "FSQAutoencoder"]}
                if self.objective == "masked"
                else {}
            ),
            **({"rewriter": ["conditioning", "PromptRewriter"]} if rewriter else {}),
            "studio": asdict(self),
        }

    @classmethod
    def read(cls, folder: str | Path) -> tuple[str, ModelSpec]:
        path = Path(folder) / INDEX
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} is not a studio model folder (no {INDEX}); give a bundled model name "
                "or a folder written by `dit-studio train`"
            )
        try:
            index = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(
                f"{path} is not readable JSON ({e}): restore it from the model's source"
            ) from None
        studio = index.get("studio") if isinstance(index, dict) else None
        if (
            studio is None
            and isinstance(index, dict)
            and "_class_name" in index
            and not str(index["_class_name"]).startswith("TextTo")
        ):
            # a diffusers pipeline folder a user brought (SD3 / SD3.5, FLUX.1)
            from .families import family_spec

            return str(index["_class_name"]), cls(**family_spec(folder, index))
        if not isinstance(studio, dict):
            raise ValueError(
                f"{path} has no 'studio' section (an object): not a dit-studio model folder"
            )
        known = {f.name for f in fields(cls)}
        if set(studio) - known:
            raise ValueError(
                f"{path}: unknown keys {sorted(set(studio) - known)} in its "
                f"'studio' section; known: {sorted(known)}"
            )
        try:
            return str(index.get("_class_name", "")), cls(**studio)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: its 'studio' section is invalid ({e})") from None


FUNCTION_WORDS = {"<pad>", "a", "an", "the", "of", "on", "at", "in", "to"}


def model_words(folder: str | Path) -> list[str]:
    """The words a model's prompt rewriter writes (its world's vocabulary: synonyms and free
    phrasing of these are rewritten to them), read from ``rewriter/config.json`` without
    torch; [] for a model without a rewriter."""
    config = Path(folder) / "rewriter" / "config.json"
    if not config.is_file():
        return []
    try:
        words = json.loads(config.read_text()).get("out_words", [])
    except (OSError, ValueError):
        return []
    return [w for w in words if isinstance(w, str) and w.lower() not in FUNCTION_WORDS]
