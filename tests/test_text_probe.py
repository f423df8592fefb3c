"""The text-use probe (training/text_probe.py): its columns differ only in the caption."""

import pytest
import torch

from pipelines.audio import TextToAudioPipeline
from training.text_probe import probe, sound_items, table


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(2)
    return TextToAudioPipeline.from_pretrained("sounds-t2a")


def test_columns_differ_only_in_the_caption(pipe):
    data, captions = sound_items(pipe, 6)
    assert data.shape[0] == len(captions) <= 6 and data.shape[2] == pipe.codec.token_dim
    blank = probe(pipe, data, [""] * len(captions), times=(0.1, 0.5))
    for r in blank:  # empty captions everywhere: all three columns are the same computation
        assert r["true"] == pytest.approx(r["empty"], rel=1e-6)
        assert r["other"] == pytest.approx(r["empty"], rel=1e-6)
    real = probe(pipe, data, captions, times=(0.1, 0.5))
    assert [r["t"] for r in real] == [0.1, 0.5]
    for r, b in zip(real, blank, strict=True):  # the same draws for every caption set
        assert r["empty"] == pytest.approx(b["empty"], rel=1e-6)
    assert any(abs(r["true"] - r["empty"]) > 1e-4 for r in real)  # the captions are read
    assert "gain of the text" in table(real) and table(real).count("\n") == 3
