import pytest
import torch

from dit import DiT, DiTConfig, StreamConfig
from dit.tokens import image_positions, text_positions

torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_config(**overrides) -> DiTConfig:
    streams = (
        StreamConfig("text", 8, "none"),
        StreamConfig("image", 12),
    )
    return DiTConfig.preset("tiny", streams=streams, pooled_dim=8, **overrides)


def randomize(model: torch.nn.Module, seed: int = 0, std: float = 0.2) -> torch.nn.Module:
    """Give zero-initialised layers random weights so tests see non-trivial outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model


@pytest.fixture
def tiny_model() -> DiT:
    torch.manual_seed(0)
    return randomize(DiT.from_dit_config(tiny_config())).eval()


def tiny_inputs(batch: int = 2, n_text: int = 5, side: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = {
        "text": torch.randn(batch, n_text, 8, generator=g),
        "image": torch.randn(batch, side * side, 12, generator=g),
    }
    positions = {"text": text_positions(n_text), "image": image_positions(side, side)}
    t = torch.rand(batch, generator=g)
    pooled = torch.randn(batch, 8, generator=g)
    return tokens, positions, t, pooled
