"""Starting points: a run's weights taken from trained model folders (recipe ``init``,
``init_text_encoder``, ``init_trunk``) and the optimiser groups that fine-tune them gently
(``init_lr_scale``)."""

from __future__ import annotations

import torch

from conditioning.byte_encoder import ByteTextEncoder
from dit import DiT

from .recipe import Recipe


def inflated(state: dict[str, torch.Tensor], model: DiT) -> dict[str, torch.Tensor]:
    """An image model's weights for a temporal video ``model`` (dit/temporal.py): the image
    stream's weights become the video stream's; the temporal layers keep their zero start."""
    if not model.cfg.temporal or any(".video." in k or k.endswith(".video") for k in state):
        return state
    video = model.cfg.temporal
    renamed = {k.replace(".image.", f".{video}."): v for k, v in state.items()}
    return renamed | {k: v for k, v in model.state_dict().items() if k.startswith("time_layers.")}


def init_weights(transformer: DiT | None, text_encoder: ByteTextEncoder, folder: str) -> None:
    """Copy a model folder's weights into freshly built models (a fine-tune's start; with
    ``transformer=None`` the text encoder alone); the shapes must match the recipe's, or the
    error says which differ."""
    from conditioning.encoders import load_text_encoder
    from pipelines.spec import resolve_model

    root = resolve_model(folder)
    fp32 = {"torch_dtype": torch.float32}
    pairs = [("text_encoder", text_encoder, load_text_encoder(root / "text_encoder", **fp32))]
    if transformer is not None:
        pairs.append(
            ("transformer", transformer, DiT.from_pretrained(root / "transformer", **fp32))
        )
    for name, model, loaded in pairs:
        state = loaded.state_dict()
        if name == "transformer":
            state = inflated(state, model)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(
                f"recipe init={folder!r}: its {name} does not fit this recipe's "
                f"model ({str(e).splitlines()[1].strip()})"
            ) from None


def init_trunk(transformer: DiT, folder: str) -> list[str]:
    """Copy every weight of ``folder``'s transformer whose name and shape this one shares (the
    blocks, the time and text embeddings); returns the names left as initialised (a masked
    model's code embedding and logits head beside a flow model's patch embedding and velocity
    head). Refused when the blocks themselves differ: then nothing would be a start."""
    from pipelines.spec import resolve_model

    loaded = DiT.from_pretrained(resolve_model(folder) / "transformer", torch_dtype=torch.float32)
    ours, theirs = transformer.state_dict(), loaded.state_dict()
    shared = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
    blocks = [k for k in ours if k.startswith("blocks.")]
    if not blocks or any(k not in shared for k in blocks):
        raise ValueError(
            f"recipe init_trunk={folder!r}: its blocks do not fit this recipe's "
            f"model (width {loaded.config.width} / depth {loaded.config.depth} / "
            f"heads {loaded.config.heads} there); use the preset it was trained "
            "with"
        )
    transformer.load_state_dict(shared, strict=False)
    return sorted(k for k in ours if k not in shared)


def param_groups(module, params: list, recipe: Recipe) -> list[dict]:
    """One group, or with ``init_lr_scale`` two: the weights an ``init`` folder gave at
    that share of the lr (fine-tune gently what works), the new ones (temporal layers) at
    the full lr."""
    if not recipe.init or recipe.init_lr_scale == 1.0:
        return [{"params": params, "scale": 1.0}]
    new = {id(p) for n, p in module.named_parameters() if ".time_layers." in f".{n}"}
    fresh = [p for p in params if id(p) in new]
    loaded = [p for p in params if id(p) not in new]
    return [{"params": fresh, "scale": 1.0}, {"params": loaded, "scale": recipe.init_lr_scale}]
