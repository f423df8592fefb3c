"""Adapter for any Hugging Face ``transformers`` text encoder kept in a local folder.

CLIP text models, T5 encoders, BERT-likes, decoder LLMs: tokens are the last hidden states,
the mask is the tokenizer's attention mask, and pooled is the model's own pooled output
(``text_embeds`` of a CLIP with projection, else ``pooler_output`` of CLIP / BERT), or the
masked mean of the tokens for models without one (T5). The encoder is frozen: eval mode, no
gradients, since these models are used as fixed feature extractors.

Unconditional prompt: the encoding of ``""`` through the tokenizer and model, as diffusers
pipelines do for an empty negative prompt (CLIP: ``[BOS, EOS]``; T5: ``[EOS]``). The model is
deterministic in eval mode, so it is identical on every call.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

from dit.loading import check_safe_folder

from .text import TextEmbeddings, check_prompts, warn_truncated

# Families whose AutoModel is not the bare text encoder (a seq2seq model, a two-tower model).
_TEXT_ONLY_CLASSES = {
    "t5": "T5EncoderModel",
    "mt5": "MT5EncoderModel",
    "umt5": "UMT5EncoderModel",
    "siglip": "SiglipTextModel",
}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt")


def resolve_folders(path: str | os.PathLike) -> tuple[Path, Path]:
    """(model folder, tokenizer folder): the folder itself, or a diffusers pipeline folder's
    ``text_encoder/`` and ``tokenizer/``."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"text encoder folder {str(folder)!r} does not exist; give a local folder holding a "
            "transformers model and its tokenizer (the studio never downloads weights)"
        )
    if not (folder / "config.json").is_file() and (folder / "text_encoder").is_dir():
        return folder / "text_encoder", folder / "tokenizer"
    return folder, folder


def model_class(config: PretrainedConfig) -> type:
    """The class whose forward is just the text encoder."""
    if config.model_type in ("clip", "clip_text_model"):
        if "CLIPTextModelWithProjection" in (config.architectures or []):
            return transformers.CLIPTextModelWithProjection
        return transformers.CLIPTextModel  # also reads the text tower of a full CLIP folder
    name = _TEXT_ONLY_CLASSES.get(config.model_type)
    return getattr(transformers, name) if name else AutoModel


class HFTextEncoder:
    """A frozen transformers encoder + tokenizer behind the :class:`TextEncoder` interface.

    max_length counts tokenizer tokens, special tokens included.
    """

    def __init__(
        self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, max_length: int = 77
    ) -> None:
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()  # e.g. BART via AutoModel: only the encoder is needed
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit is not None and max_length > limit:
            raise ValueError(
                f"max_length={max_length} exceeds the model's {limit} positions; lower it"
            )
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError("the tokenizer has no pad or eos token; set tokenizer.pad_token")
            tokenizer.pad_token = tokenizer.eos_token  # padded positions are masked out anyway
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.width: int = model.config.hidden_size
        # Whether the model has a pooled output, and its size, is only known by running it.
        self.pooled_dim: int = self.encode([""]).pooled.shape[-1]

    @classmethod
    def from_folder(
        cls,
        path: str | os.PathLike,
        max_length: int = 77,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
    ) -> HFTextEncoder:
        """Load model + tokenizer from a local folder: never downloads, reads safetensors only."""
        model_dir, tokenizer_dir = resolve_folders(path)
        check_safe_folder(model_dir)
        if not any((tokenizer_dir / name).is_file() for name in _TOKENIZER_FILES):
            raise FileNotFoundError(
                f"{tokenizer_dir} has no tokenizer files; save the tokenizer beside the model "
                "(tokenizer.save_pretrained(folder))"
            )
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        extra = {} if dtype is None else {"dtype": dtype}
        model = model_class(config).from_pretrained(
            model_dir, local_files_only=True, use_safetensors=True, **extra
        )
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        return cls(model.to(device), tokenizer, max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> ids (B, L) long and mask (B, L) bool, right-padded, on the model's device."""
        prompts = check_prompts(prompts)
        for i, ids in enumerate(self.tokenizer(prompts, verbose=False)["input_ids"]):
            if len(ids) > self.max_length:
                warn_truncated(i, len(ids), self.max_length, self.max_length, "tokens")
        batch = self.tokenizer(
            prompts,
            padding="longest",
            padding_side="right",  # real tokens keep positions 0..n-1, as when encoded alone
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        ids, mask = batch["input_ids"], batch["attention_mask"].bool()  # (B, L)
        if ids.shape[1] == 0:
            ids = torch.full((len(prompts), 1), self.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids, dtype=torch.bool)
        # A tokenizer without special tokens turns "" into nothing; one pad token stands in,
        # since a row of only padding would leave attention nothing to attend to.
        mask[~mask.any(1), 0] = True
        return ids.to(self.device), mask.to(self.device)

    def encode(self, prompts: list[str]) -> TextEmbeddings:
        """Encode prompts without gradients (the encoder is frozen)."""
        ids, mask = self.tokenize(prompts)
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=mask.long())
        m = mask[..., None].to(out.last_hidden_state.dtype)  # (B, L, 1)
        tokens = out.last_hidden_state * m  # (B, L, D), zero at padding
        pooled = getattr(out, "text_embeds", None)  # (B, P): CLIP with projection
        if pooled is None:
            pooled = getattr(out, "pooler_output", None)  # (B, D): CLIP, BERT
        if pooled is None:
            pooled = tokens.sum(1) / m.sum(1)  # (B, D): masked mean
        return TextEmbeddings(tokens, mask, pooled)
