"""FSQ: exact code <-> value maps, a grid of L values per channel, a straight-through
gradient, and an autoencoder folder that saves, loads and codes the same."""

import itertools

import pytest
import torch

from conditioning.fsq import FSQ, FSQAutoencoder


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [3, 4], [2, 7, 6]])
def test_every_code_maps_to_values_and_back(levels):
    fsq = FSQ(levels)
    codes = torch.arange(fsq.codebook_size)
    values = fsq.values(codes)  # (K, d)
    assert torch.equal(fsq.codes(values), codes)
    # all d-tuples of levels appear exactly once
    grid = {tuple(v) for v in values.tolist()}
    assert len(grid) == fsq.codebook_size == len(list(itertools.product(*map(range, levels))))
    assert values.abs().max() <= 1.0


@pytest.mark.parametrize("levels", [[8, 5], [4, 3]])
def test_quantizer_rounds_onto_exactly_l_values_per_channel(levels):
    fsq = FSQ(levels)
    z = torch.linspace(-20, 20, 4001)[:, None].expand(-1, len(levels))
    q = fsq(z)
    for i, n in enumerate(levels):
        assert len(torch.unique(q[:, i])) == n
    assert torch.equal(fsq.values(fsq.codes(q)), q)  # quantized values are codebook entries


def test_straight_through_gradient_reaches_the_latents():
    fsq = FSQ([5, 5])
    z = torch.randn(10, 2, requires_grad=True)
    fsq(z).sum().backward()
    assert z.grad is not None and (z.grad.abs() > 0).all()


@pytest.mark.parametrize(
    "kind, channels, shape, grid",
    [("image", 3, (2, 3, 16, 8), (2, 4, 2)), ("mel", 10, (2, 12, 10), (2, 3))],
)
@pytest.mark.parametrize("blocks", [0, 1])
def test_autoencoder_shapes_and_save_load_same_codes(tmp_path, kind, channels, shape, grid, blocks):
    torch.manual_seed(0)
    tok = FSQAutoencoder(
        kind=kind, channels=channels, hidden=8, down=2, levels=[4, 3], blocks=blocks
    ).eval()
    x = torch.randn(shape)
    codes = tok.encode(x)
    assert codes.shape == grid and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < tok.codebook_size == 12
    assert tok.decode(codes).shape == shape
    tok.save_pretrained(tmp_path / "tok")
    again = FSQAutoencoder.from_pretrained(tmp_path / "tok").eval()
    with torch.no_grad():
        assert torch.equal(again.encode(x), codes)
        assert torch.equal(again.decode(codes), tok.decode(codes))
        # decoding the codes is the forward pass's reconstruction, exactly
        torch.testing.assert_close(tok(x), tok.decode(codes), atol=1e-6, rtol=0)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="levels"):
        FSQ([1, 5])
    with pytest.raises(ValueError, match="kind"):
        FSQAutoencoder(kind="video")
