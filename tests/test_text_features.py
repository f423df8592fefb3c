"""Linear probes of text features (training/text_features.py): right where the answer is in
the features, chance where it is not."""

import numpy as np

from training.text_features import probe_accuracy, sound_captions, text_features


def test_a_probe_reads_an_attribute_that_is_in_the_features_and_not_one_that_is_not():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 600)
    onehot = np.eye(5)[labels] + 0.1 * rng.standard_normal((600, 5))
    assert probe_accuracy(onehot, list(labels)) == 100.0
    noise = rng.standard_normal((600, 5))
    assert probe_accuracy(noise, list(labels)) < 40.0  # chance is 20%


def test_sound_captions_name_single_pitched_events_with_their_labels():
    captions, labels = sound_captions(40)
    assert len(captions) == 40 and {len(v) for v in labels.values()} == {40}
    assert set(labels["timbre"]) <= {"sine", "square", "string", "bell"}
    # the canonical captions (every other one) name the note
    assert all(p in c for c, p in zip(captions[::2], labels["pitch"][::2], strict=True))


def test_features_come_per_caption():
    from pipelines.registry import load_pipeline

    captions, _ = sound_captions(6)
    feats = text_features(load_pipeline("sounds-t2a").text_encoder, captions, batch=4)
    assert feats["pooled"].shape[0] == feats["token mean"].shape[0] == 6
