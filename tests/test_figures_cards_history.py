"""The page's building blocks that need no model: previews with axes, model cards and the
outputs folder read as a history."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pipelines.cards import Card, Score, read_card
from pipelines.figures import enlarge, frame_grid, frequency_ticks, hz_to_mel, time_ticks
from pipelines.history import History
from pipelines.outputs import wav_bytes, write_png
from pipelines.spec import ASSETS, bundled_models


def test_enlarge_is_whole_factor_nearest_neighbour():
    img = np.arange(16 * 12 * 3, dtype=np.uint8).reshape(16, 12, 3)
    big = enlarge(img, 256)
    assert big.shape == (256, 192, 3)  # factor 16: the longer side exactly reaches 256
    assert (big[::16, ::16] == img).all() and (big[15::16, 15::16] == img).all()
    assert enlarge(np.zeros((300, 10, 3), np.uint8)).shape == (300, 10, 3)  # already large


def test_frame_grid_places_frames_in_rows_with_separators():
    video = np.stack([np.full((4, 5, 3), 10 * i, np.uint8) for i in range(8)])
    grid = frame_grid(video, columns=4)
    assert grid.shape == (2 * 5 - 1, 4 * 6 - 1, 3)
    assert (grid[0:4, 0:5] == 0).all() and (grid[5:9, 18:23] == 70).all()
    assert (grid[4, :] == 255).all() and (grid[:, 5] == 255).all()  # the white lines


def test_mel_ticks_follow_the_htk_scale():
    assert hz_to_mel(700.0) == pytest.approx(2595.0 * np.log10(2.0))
    ticks = frequency_ticks(0.0, 8000.0)
    shares = [s for s, _ in ticks]
    assert [label for _, label in ticks] == [
        "100 Hz",
        "250 Hz",
        "500 Hz",
        "1 kHz",
        "2 kHz",
        "4 kHz",
        "8 kHz",
    ]
    assert shares == sorted(shares) and shares[-1] == pytest.approx(1.0)
    # 1 kHz sits about 55% up a 0-8 kHz mel axis (1000 / 2840 mel), not 12.5% as on a linear one
    one_k = dict((lab, s) for s, lab in ticks)["1 kHz"]
    assert one_k == pytest.approx(1000 / hz_to_mel(8000), 1e-2)


def test_time_ticks_are_round_and_span_the_clip():
    ticks = time_ticks(3.0)
    assert [label for _, label in ticks] == ["0 s", "0.5 s", "1 s", "1.5 s", "2 s", "2.5 s", "3 s"]
    assert ticks[-1][0] == pytest.approx(1.0)


def test_verdict_counts_targets():
    met = Card(scores=(Score("a", "1", ">= 1", True), Score("b", "2")))
    short = Card(scores=(Score("a", "1", ">= 2", False), Score("b", "2", ">= 1", True)))
    assert met.meets_targets is True and met.verdict() == "meets its targets"
    assert short.meets_targets is False and short.verdict() == "short of 1 of its 2 targets"
    assert Card().meets_targets is None
    assert "| a | 1 | >= 2 | not met |" in short.markdown()


@pytest.mark.parametrize("name", bundled_models())
def test_every_bundled_model_has_a_card(name):
    card = read_card(ASSETS / name)
    assert card.summary and card.trained_on and len(card.examples) >= 3
    assert card.scores and all(s.value for s in card.scores)


def test_a_malformed_card_is_a_clear_error(tmp_path):
    (tmp_path / "README.md").write_text("---\nscores:\n- value: 3\n---\n")
    with pytest.raises(ValueError, match="malformed model card"):
        read_card(tmp_path)
    assert read_card(tmp_path / "nowhere") == Card()


def _settings(prompt, modality="image"):
    return {"prompt": prompt, "modality": modality, "seed": 1}


def test_history_is_the_outputs_folder_newest_first_and_paged(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    for i in range(5):
        path = write_png(tmp_path / f"{i}.png", img, _settings(f"p{i}"))
        os.utime(path, ns=(10**18 + i, 10**18 + i))
    (tmp_path / "sound.wav").write_bytes(
        wav_bytes(np.zeros(160, np.float32), 16000, _settings("s", "audio"))
    )
    (tmp_path / "foreign.png").write_bytes(b"not a png")  # skipped, not an error
    (tmp_path / ".tmp-9.png").write_bytes(b"")  # a file being written: hidden
    history = History(tmp_path)
    first, more = history.page("image", 0, per_page=2)
    assert [e.settings["prompt"] for e in first] == ["p4", "p3"] and more
    last, more = History(tmp_path).page("image", 2, per_page=2)  # a restart reads the same
    assert [e.settings["prompt"] for e in last] == ["p0"] and not more
    sounds, _ = history.page("audio")
    assert [e.path.name for e in sounds] == ["sound.wav"]
    assert History(tmp_path / "missing").page("image") == ([], False)
