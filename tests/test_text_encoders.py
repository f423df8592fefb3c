import shutil
import warnings

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    PreTrainedTokenizerFast,
    T5Config,
    T5EncoderModel,
)

from conditioning.byte_encoder import NULL, ByteTextEncoder
from conditioning.encoders import load_text_encoder
from conditioning.hf_encoder import HFTextEncoder
from conditioning.text import TextEncoder

PROMPTS = ["a cat", "一只猫在垫子上", "🐱 on a mat 🎉", "a dog"]


@pytest.fixture(scope="module")
def byte_encoder() -> ByteTextEncoder:
    torch.manual_seed(0)
    return ByteTextEncoder(width=32, depth=2, heads=2, max_length=48).eval()


def real(emb, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row i's real tokens (n_i, D) and its pooled vector (P,)."""
    return emb.tokens[i][emb.mask[i]], emb.pooled[i]


def public(config) -> dict:
    """Config values without diffusers' bookkeeping (``_name_or_path`` and the like)."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def assert_padding_invariant(encoder: TextEncoder, prompts: list[str]) -> None:
    batch = encoder.encode(prompts)
    assert (batch.tokens[~batch.mask] == 0).all()
    for i, p in enumerate(prompts):
        alone = encoder.encode([p])
        assert alone.mask.all() and int(batch.mask[i].sum()) == alone.mask.shape[1]
        tokens, pooled = real(batch, i)
        torch.testing.assert_close(tokens, alone.tokens[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(pooled, alone.pooled[0], atol=1e-5, rtol=0)


# --- byte encoder -----------------------------------------------------------------------------


def test_byte_encoder_reads_any_unicode(byte_encoder):
    assert isinstance(byte_encoder, TextEncoder)
    emb = byte_encoder.encode(PROMPTS)
    lengths = [len(p.encode("utf-8")) for p in PROMPTS]
    assert emb.tokens.shape == (4, max(lengths), 32)
    assert emb.pooled.shape == (4, 32)
    assert emb.mask.sum(1).tolist() == lengths
    assert torch.isfinite(emb.tokens).all()
    for i in range(4):
        for j in range(i + 1, 4):
            assert (emb.pooled[i] - emb.pooled[j]).abs().max() > 1e-3, (PROMPTS[i], PROMPTS[j])
    # Same bytes, different order: positions must matter.
    a, b = byte_encoder.encode(["ab", "ba"]).pooled
    assert (a - b).abs().max() > 1e-4


def test_empty_prompt_is_one_fixed_null_token(byte_encoder):
    first = byte_encoder.encode([""])
    assert first.mask.tolist() == [[True]]
    assert byte_encoder.tokenize([""])[0].tolist() == [[NULL]]
    again = byte_encoder.encode(["", ""])
    mixed = byte_encoder.encode(["a long prompt", ""])
    for emb, i in ((again, 0), (again, 1), (mixed, 1)):
        tokens, pooled = real(emb, i)
        torch.testing.assert_close(tokens, first.tokens[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(pooled, first.pooled[0], atol=1e-6, rtol=0)
    assert torch.equal(byte_encoder.encode([""]).tokens, first.tokens)  # bit-identical per call
    space = byte_encoder.encode([" "])  # a real prompt, not the unconditional one
    assert (space.pooled - first.pooled).abs().max() > 1e-4


def test_truncation_warns_and_keeps_a_prefix(byte_encoder):
    long = "x" * 50
    with pytest.warns(UserWarning, match=r"50 bytes long; dropped the last 2 .*max_length=48") as w:
        cut = byte_encoder.encode([long])
    assert w[0].filename == __file__  # points at the caller of encode, not inside the encoder
    assert cut.mask.shape == (1, 48)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 48 bytes fit: no warning
        ref = byte_encoder.encode([long[:48]])
    assert torch.equal(cut.tokens, ref.tokens) and torch.equal(cut.pooled, ref.pooled)
    # The cut never splits a character: 46 ASCII bytes + a 4-byte emoji keeps only the ASCII.
    split = "y" * 46 + "🐱"
    with pytest.warns(UserWarning, match="dropped the last 4 bytes"):
        cut = byte_encoder.encode([split])
    torch.testing.assert_close(cut.tokens, byte_encoder.encode(["y" * 46]).tokens)


def test_padding_does_not_change_real_tokens(byte_encoder):
    assert_padding_invariant(byte_encoder, ["a", "a much longer prompt 🐱", ""])


def test_save_load_identical_and_pickles_refused(byte_encoder, tmp_path):
    before = byte_encoder.encode(PROMPTS)
    byte_encoder.save_pretrained(tmp_path)
    loaded = load_text_encoder(tmp_path)
    assert isinstance(loaded, ByteTextEncoder)
    assert public(loaded.config) == public(byte_encoder.config)
    after = loaded.encode(PROMPTS)
    assert torch.equal(after.tokens, before.tokens) and torch.equal(after.pooled, before.pooled)

    weights = next(tmp_path.glob("*.safetensors"))
    torch.save(byte_encoder.state_dict(), tmp_path / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ValueError, match="refuses to unpickle"):
        ByteTextEncoder.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="refuses to unpickle"):
        load_text_encoder(tmp_path)


def test_gradients_reach_the_byte_embedding():
    torch.manual_seed(0)
    encoder = ByteTextEncoder(width=32, depth=1, heads=2, max_length=16)
    emb = encoder.encode(["hi", "🐱"])
    g = torch.Generator().manual_seed(1)
    # A random read-out: sum(LayerNorm(x)) alone has zero gradient by construction.
    loss = (emb.tokens * torch.randn(emb.tokens.shape, generator=g)).sum() + emb.pooled.sum()
    loss.backward()
    grad = encoder.embed.weight.grad
    used = sorted(set(b"hi" + "🐱".encode()))
    assert (grad[used].abs().sum(1) > 0).all()
    assert grad[ord("z")].abs().sum() == 0  # an unused byte gets none
    assert encoder.pos.grad.abs().sum() > 0


def test_config_is_validated_and_bare_strings_refused(byte_encoder):
    with pytest.raises(ValueError, match="divisible"):
        ByteTextEncoder(width=30, heads=4)
    with pytest.raises(TypeError, match="list of prompts"):
        byte_encoder.encode("a cat")
    fresh = load_text_encoder({"width": 16, "depth": 1, "heads": 2, "max_length": 8})
    assert isinstance(fresh, ByteTextEncoder) and fresh.pooled_dim == 16


# --- Hugging Face adapter ---------------------------------------------------------------------

CLIP_WORDS = "abcdefghijklmnopqrstuvwxyz"
T5_WORDS = ["<pad>", "</s>", "<unk>", "a", "cat", "dog", "red", "on", "the", "mat"]


def save_tiny_clip(folder, with_projection: bool) -> None:
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in CLIP_WORDS:  # no merges: one token per letter
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=77,
        projection_dim=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    cls(config).save_pretrained(folder)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)


def save_tiny_t5(folder) -> None:
    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(T5_WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = Whitespace()
    backend.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = T5Config(
        vocab_size=len(T5_WORDS),
        d_model=32,
        d_kv=16,
        d_ff=37,
        num_layers=1,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    T5EncoderModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("hf")
    save_tiny_clip(root / "clip", with_projection=False)
    save_tiny_clip(root / "clip_proj", with_projection=True)
    save_tiny_t5(root / "t5")
    return {name: root / name for name in ("clip", "clip_proj", "t5")}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(
    ("name", "pooled_dim", "prompts", "null_len"),
    [
        ("clip", 32, ["a cat", "the red dog on a mat"], 2),  # [BOS, EOS]; pooled = EOS state
        ("clip_proj", 16, ["a cat", "the red dog on a mat"], 2),  # pooled = text_embeds
        ("t5", 32, ["a cat", "the red dog on the mat"], 1),  # [EOS]; pooled = masked mean
    ],
)
def test_hf_encoder_offline(hf_folders, name, pooled_dim, prompts, null_len):
    encoder = load_text_encoder(hf_folders[name], max_length=20)
    assert isinstance(encoder, HFTextEncoder) and isinstance(encoder, TextEncoder)
    assert (encoder.width, encoder.pooled_dim) == (32, pooled_dim)
    emb = encoder.encode(prompts)
    lengths = [len(encoder.tokenizer(p)["input_ids"]) for p in prompts]
    assert emb.tokens.shape == (2, max(lengths), 32)
    assert emb.mask.sum(1).tolist() == lengths
    assert emb.pooled.shape == (2, pooled_dim)
    assert (emb.pooled[0] - emb.pooled[1]).abs().max() > 1e-4
    assert_padding_invariant(encoder, [*prompts, ""])
    null = encoder.encode([""])
    assert null.mask.shape == (1, null_len)
    assert torch.equal(encoder.encode([""]).tokens, null.tokens)
    if name == "t5":  # no pooled output of its own: the masked mean of the real tokens
        torch.testing.assert_close(emb.pooled[1], emb.tokens[1][emb.mask[1]].mean(0))


def test_hf_truncation_warns(hf_folders):
    encoder = HFTextEncoder.from_folder(hf_folders["clip"], max_length=6)
    with pytest.warns(UserWarning, match=r"12 tokens long; dropped the last 6 .*max_length=6"):
        emb = encoder.encode(["abcdefghij"])  # BOS + 10 letters + EOS
    assert emb.mask.shape == (1, 6)
    with pytest.raises(ValueError, match="exceeds the model's 77 positions"):
        HFTextEncoder.from_folder(hf_folders["clip"], max_length=100)


def test_hf_reads_a_diffusers_pipeline_folder(hf_folders, tmp_path):
    shutil.copytree(hf_folders["t5"], tmp_path / "text_encoder")
    shutil.copytree(hf_folders["t5"], tmp_path / "tokenizer")
    (tmp_path / "text_encoder" / "tokenizer.json").unlink()  # each half from its own folder
    encoder = load_text_encoder(tmp_path)
    reference = HFTextEncoder.from_folder(hf_folders["t5"])
    assert torch.equal(encoder.encode(["a red cat"]).tokens, reference.encode(["a red cat"]).tokens)


def test_hf_folder_must_be_local_and_safe(hf_folders, tmp_path):
    with pytest.raises(FileNotFoundError, match="give a local folder"):
        HFTextEncoder.from_folder(tmp_path / "openai/clip-vit-large-patch14")
    pickled = tmp_path / "pickled"
    save_tiny_t5(pickled)
    weights = next(pickled.glob("*.safetensors"))
    state = T5EncoderModel.from_pretrained(pickled).state_dict()
    torch.save(state, pickled / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ValueError, match="refuses to unpickle"):
        HFTextEncoder.from_folder(pickled)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="not a text encoder folder"):
        load_text_encoder(tmp_path / "other")
