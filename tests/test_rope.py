import torch

from dit.rope import apply_rope, rope_angles, rope_cos_sin
from dit.tokens import audio_positions, grid_positions

DIMS, SCALES = (4, 4, 4, 4), (1.0, 25.0, 1.0, 1.0)


def scores(pos_q, pos_k, q, k):
    cq, sq = rope_cos_sin(rope_angles(pos_q[None], DIMS, 10_000.0, SCALES), torch.float64)
    ck, sk = rope_cos_sin(rope_angles(pos_k[None], DIMS, 10_000.0, SCALES), torch.float64)
    # q, k: (B, N, H, Dh), token-major as in the blocks -> scores (B, H, Nq, Nk)
    return apply_rope(q, cq, sq).transpose(1, 2) @ apply_rope(k, ck, sk).permute(0, 2, 3, 1)


def test_scores_depend_only_on_offsets():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 6, 2, 16, generator=g, dtype=torch.float64)
    k = torch.randn(1, 6, 2, 16, generator=g, dtype=torch.float64)
    pos = torch.rand(6, 4, generator=g, dtype=torch.float64) * 10
    base = scores(pos, pos, q, k)
    shifted = pos + torch.tensor([3.0, 0.37, -5.0, 11.0], dtype=torch.float64)
    torch.testing.assert_close(scores(shifted, shifted, q, k), base, atol=1e-9, rtol=0)
    # ... and do depend on them: a different offset between q and k changes the scores.
    assert (scores(pos, shifted, q, k) - base).abs().max() > 1e-3


def test_audio_and_video_at_the_same_instant_share_the_time_phase():
    video = grid_positions(frames=3, h=1, w=1, fps=12.5)  # frames at 0, 0.08, 0.16 s
    audio = audio_positions(17, seconds_per_token=0.01)  # tokens at 0, 0.01, ..., 0.16 s
    av = rope_angles(video[None], DIMS, 10_000.0, SCALES)[0]
    aa = rope_angles(audio[None], DIMS, 10_000.0, SCALES)[0]
    time_slice = slice(2, 4)  # the time axis' angle pairs
    torch.testing.assert_close(av[1, time_slice], aa[8, time_slice])
    torch.testing.assert_close(av[2, time_slice], aa[16, time_slice])


def test_rotation_preserves_norm():
    x = torch.randn(1, 5, 2, 16, dtype=torch.float64)
    cos, sin = rope_cos_sin(rope_angles(torch.rand(1, 5, 4) * 7, DIMS, 1e4, SCALES), x.dtype)
    torch.testing.assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))


def test_rotation_is_multiplication_by_a_unit_complex_number():
    # The pair (i, i + Dh/2) is the complex number x_i + j x_{i+Dh/2}, turned by e^{j angle}.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 16, generator=g, dtype=torch.float64)
    angles = torch.rand(2, 5, 8, generator=g, dtype=torch.float64) * 7
    z = (
        torch.complex(x[..., :8], x[..., 8:])
        * torch.polar(torch.ones_like(angles), angles)[:, :, None]
    )
    cos, sin = rope_cos_sin(angles, x.dtype)
    torch.testing.assert_close(apply_rope(x, cos, sin), torch.cat([z.real, z.imag], -1))
