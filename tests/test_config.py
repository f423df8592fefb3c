import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dit import PRESETS, DiT, DiTConfig, StreamConfig

STREAMS = (StreamConfig("text", 16, "none"), StreamConfig("image", 16))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build(name):
    cfg = DiTConfig.preset(name, streams=STREAMS)
    assert sum(cfg.rope_dims) == cfg.head_dim
    assert DiTConfig(**cfg.to_dict()) == cfg  # round-trips through plain values


def test_preset_sizes_are_ordered():
    import torch

    counts = []
    for name in ("tiny", "s", "b", "l", "xl"):
        with torch.device("meta"):
            m = DiT.from_dit_config(DiTConfig.preset(name, streams=STREAMS, pooled_dim=16))
        counts.append(sum(p.numel() for p in m.parameters()))
    assert counts == sorted(counts)
    assert 2e6 < counts[1] < 2e7  # s: a few M
    assert 0.6e9 < counts[4] < 0.8e9  # xl: DiT-XL scale


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(width=30, heads=4), "width"),
        (dict(depth=0), "depth"),
        (dict(mlp_ratio=float("nan")), "mlp_ratio"),
        (dict(rope_dims=(2, 2, 2, 2)), "rope_dims"),
        (dict(rope_scales=(1.0, -1.0, 1.0, 1.0)), "rope_scales"),
        (dict(streams=(StreamConfig("text", 4, "none"),)), "streams"),
    ],
)
def test_invalid_configs_name_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        DiTConfig.preset("tiny", **{"streams": STREAMS, **change})


def test_invalid_stream_names_the_fix():
    with pytest.raises(ValueError, match="codebook_size"):
        StreamConfig("image", head="logits", codebook_size=1)
    with pytest.raises(ValueError, match="identifier"):
        StreamConfig("my image")
    with pytest.raises(ValueError, match="preset"):
        DiTConfig.preset("huge", streams=STREAMS)


anything = st.one_of(
    st.integers(-5, 600),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
    st.lists(st.integers(-2, 40), max_size=5),
)
stream = st.fixed_dictionaries(
    {
        "name": st.one_of(st.sampled_from(["text", "image", "audio"]), st.text(max_size=4)),
        "in_dim": anything,
        "head": st.one_of(st.sampled_from(["none", "velocity", "logits"]), anything),
        "codebook_size": anything,
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    streams=st.lists(stream, max_size=3),
    width=anything,
    depth=anything,
    heads=anything,
    mlp_ratio=anything,
    pooled_dim=anything,
    freq_dim=anything,
    rope_dims=anything,
    rope_theta=anything,
    rope_scales=anything,
    qk_norm=anything,
    eps=anything,
)
def test_random_configs_raise_only_value_errors(streams, **kw):
    try:
        cfg = DiTConfig(streams=tuple(streams), **kw)
    except ValueError as e:
        assert str(e)  # a message that says what to change
        return
    # Valid: the config is self-consistent and builds a model.
    assert cfg.width % cfg.heads == 0 and sum(cfg.rope_dims) == cfg.head_dim
    assert math.isfinite(cfg.mlp_ratio)
    if cfg.width * cfg.depth * max(cfg.mlp_dim, cfg.width) <= 2e6:
        DiT.from_dit_config(cfg)
