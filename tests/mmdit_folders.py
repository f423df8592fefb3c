"""Tiny random SD3 / SD3.5 / FLUX.1 model folders in the real diffusers layout, built offline.

What diffusers' own pipeline tests do with downloaded tiny models, done here from nothing:
transformers configs for CLIP and T5 with tiny widths, tokenizers trained on a few sentences
with the ``tokenizers`` library (CLIP's byte-level BPE, T5's unigram) and saved as
``transformers`` saves them, and every component written by the pipeline's
``save_pretrained`` (so ``model_index.json`` is the one diffusers writes).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SENTENCES = [
    "a photo of a cat sitting on a red chair",
    "an astronaut riding a horse on the moon, digital art",
    "a small blue house by the lake at sunset",
    "portrait of an old man with a grey beard, oil painting",
    "two dogs playing in the snow",
    "a bowl of fruit: apples, pears and grapes",
]
CLIP_DIM, T5_DIM = 32, 64


def randomise(model: torch.nn.Module, seed: int, scale: float = 0.3) -> None:
    """Every weight random (the transformers' zero-initialised modulations would otherwise
    make the comparison trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def clip_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = ["<|startoftext|>", "<|endoftext|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        end_of_word_suffix="</w>",
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(SENTENCES, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    vocab = dict(model["vocab"])
    for ch in pre_tokenizers.ByteLevel.alphabet():  # every byte at a word end too
        vocab.setdefault(ch + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def t5_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5TokenizerFast

    uni = Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    uni.train_from_iterator(SENTENCES, trainer)
    vocab = [tuple(v) for v in json.loads(uni.to_str())["model"]["vocab"]]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=512)


def _clip(seed: int, projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        hidden_size=CLIP_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=16,
        vocab_size=1000,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_act="gelu",
    )
    model = (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)
    randomise(model, seed, 0.1)
    return model.eval()


def _t5(seed: int):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        d_model=T5_DIM,
        d_ff=64,
        d_kv=8,
        num_layers=2,
        num_heads=4,
        vocab_size=1000,
        relative_attention_num_buckets=8,
    )
    model = T5EncoderModel(config)
    randomise(model, seed, 0.1)
    return model.eval()


def _vae(shift: float, scale: float):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=16,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=32,
        scaling_factor=scale,
        shift_factor=shift,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    randomise(vae, 5, 0.2)
    return vae.eval()


def sd3_folder(folder: str | Path, sd35: bool = False) -> Path:
    """A tiny random StableDiffusion3Pipeline folder (SD3.5 with q/k norm and dual attention)."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    extra = {"qk_norm": "rms_norm", "dual_attention_layers": (0,)} if sd35 else {}
    transformer = SD3Transformer2DModel(
        sample_size=4,
        patch_size=2,
        in_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=T5_DIM,
        caption_projection_dim=32,
        pooled_projection_dim=32,
        out_channels=16,
        pos_embed_max_size=12,
        **extra,
    )
    randomise(transformer, 1, 0.1)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(0.0609, 1.5305),
        text_encoder=_clip(2, True),
        tokenizer=clip_tokenizer(),
        text_encoder_2=_clip(3, True),
        tokenizer_2=clip_tokenizer(),
        text_encoder_3=_t5(4),
        tokenizer_3=t5_tokenizer(),
    )
    pipe.save_pretrained(folder)
    return Path(folder)


def flux_folder(folder: str | Path, dev: bool = True) -> Path:
    """A tiny random FluxPipeline folder: dev (guidance embedding, dynamic shift) or schnell."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=T5_DIM,
        pooled_projection_dim=CLIP_DIM,
        guidance_embeds=dev,
        axes_dims_rope=(4, 6, 6),
    )
    randomise(transformer, 1, 0.1)
    scheduler = (
        FlowMatchEulerDiscreteScheduler(
            use_dynamic_shifting=True,
            base_shift=0.5,
            max_shift=1.15,
            base_image_seq_len=256,
            max_image_seq_len=4096,
        )
        if dev
        else FlowMatchEulerDiscreteScheduler(shift=1.0)
    )
    pipe = FluxPipeline(
        transformer=transformer.eval(),
        scheduler=scheduler,
        vae=_vae(0.1159, 0.3611),
        text_encoder=_clip(2, False),
        tokenizer=clip_tokenizer(),
        text_encoder_2=_t5(4),
        tokenizer_2=t5_tokenizer(),
    )
    pipe.save_pretrained(folder)
    return Path(folder)


FOLDERS = {
    "sd3": lambda f: sd3_folder(f),
    "sd3.5": lambda f: sd3_folder(f, sd35=True),
    "flux-dev": lambda f: flux_folder(f, dev=True),
    "flux-schnell": lambda f: flux_folder(f, dev=False),
}
