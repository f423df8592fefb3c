"""The auxiliary ground-truth classifier of flow recipes (recipe ``aux``,
training/ground_truth.py): labels read off the scene, a loss that trains the trunk, and an
export without the head."""

import numpy as np
import pytest
import torch

from training.ground_truth import SOUNDS_CLASSES, note_class, sounds_labels
from training.recipe import Recipe
from training.trainer import _objective, train
from training.world.sounds import LEAD, Event, SoundScene

TOKEN = 0.064


def test_labels_mark_the_sound_at_each_token_and_its_onset():
    a4 = Event("sine", "A4", length=0.5)  # sounds from LEAD = 0.1 s to 0.6 s
    labels = sounds_labels(SoundScene((a4,), duration=1.0), TOKEN, 16)
    centres = (np.arange(16) + 0.5) * TOKEN
    on = (centres >= LEAD) & (centres < LEAD + 0.5)
    assert (labels[on, 0] == 1).all() and (labels[~on, 0] == 0).all()  # sine = TIMBRES[0]
    assert (labels[on, 1] == 1 + 21).all()  # A4 is 21 semitones above C3
    assert labels[:, 2].tolist() == [int(i == 1) for i in range(16)]  # 0.1 s: token 1


def test_notes_and_chirps_have_their_own_classes():
    assert note_class(Event("bell", "C3")) == 1
    assert note_class(Event("square", "B5")) == 36
    assert (
        note_class(Event("chirp", "rising")) == 37 and note_class(Event("chirp", "falling")) == 38
    )
    assert note_class(Event("noise")) == 0
    assert SOUNDS_CLASSES[1] == 39


def _aux_recipe(**kw) -> Recipe:
    media = {"modality": "audio", "data": "sounds", "seconds": 1.0}
    return Recipe(
        name="aux",
        preset="tiny",
        codec={"n_mels": 16, "frames_per_token": 4},
        data_size=32,
        text_encoder={"width": 32, "depth": 1, "heads": 2},
        batch_size=4,
        steps=2,
        warmup=1,
        lr=1e-3,
        checkpoint_every=2,
        sample_every=1000,
        **{**media, **kw},
    )


def test_aux_loss_trains_the_trunk_and_its_head():
    objective, media = _objective(_aux_recipe(aux={"weight": 0.5, "block": 0}))
    from training.data import make_source

    source = make_source(_aux_recipe(aux={"weight": 0.5, "block": 0}))
    bucket = max(source.buckets(), key=len)[:4].tolist()  # items of one token count
    items = [source.item(i) for i in bucket]
    data, pos = media.tokens(torch.stack([x for x, _ in items]))
    labels = torch.stack([source.labels(i) for i in bucket])
    assert labels.shape == (*data.shape[:2], 3)
    g = torch.Generator().manual_seed(0)
    b = len(bucket)
    noise, t = torch.randn(data.shape, generator=g), torch.rand(b, generator=g)
    captions = [c for _, c in items]
    with_aux = objective(data, pos, captions, noise, t, labels=labels)
    objective.aux_weight = 0.0
    plain = objective(data, pos, captions, noise, t, labels=labels)
    aux = objective.aux_loss(labels)
    torch.testing.assert_close(with_aux, plain + 0.5 * aux)
    assert aux > 0.5 * np.log(min(SOUNDS_CLASSES))  # a fresh head: about chance
    objective.aux_weight = 0.5
    objective(data, pos, captions, noise, t, labels=labels).backward()
    block0 = objective.transformer.blocks[0]
    assert objective.aux_head.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in block0.parameters())


def test_aux_head_is_not_exported(tmp_path):
    folder = train(_aux_recipe(aux={"weight": 0.1, "block": 0}), tmp_path / "run")
    from dit import DiT

    keys = DiT.from_pretrained(folder / "transformer").state_dict().keys()
    assert not any("aux" in k for k in keys)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"aux": {"weight": 0.1}}, "block"),
        ({"aux": {"weight": -1, "block": 0}}, "weight"),
        ({"aux": {"weight": 0.1, "block": 0}, "data": "shapes", "modality": "image"}, "sounds"),
    ],
)
def test_bad_aux_settings_say_what_to_change(kw, match):
    with pytest.raises(ValueError, match=match):
        _aux_recipe(**kw)


def test_an_aux_block_past_the_trunk_is_refused():
    with pytest.raises(ValueError, match="block"):
        _objective(_aux_recipe(aux={"weight": 0.1, "block": 99}))
