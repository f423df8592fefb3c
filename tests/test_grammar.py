"""The caption grammars of every world: held-out words and forms never reach a training caption,
canonical captions are deterministic, and the word-level vocabulary reads every phrasing."""

from __future__ import annotations

import numpy as np
import pytest

from conditioning.word_encoder import UNK, WordTextEncoder
from training.world import audiovideo, digits, motion, shapes, sounds
from training.world.grammar import Forms, contains_phrase, form_words, normalise


def _truths(world, rng, n):
    if world is shapes:
        return [shapes.sample_scene(rng, "train") for _ in range(n)]
    if world is motion:
        return [motion.sample_clip(rng) for _ in range(n)]
    if world is audiovideo:
        return [audiovideo.sample_scene(rng) for _ in range(n)]
    if world is sounds:
        return [sounds.sample_scene(rng) for _ in range(n)]
    return [int(d) for d in rng.integers(10, size=n)]


WORLDS = [shapes, digits, sounds, motion, audiovideo]


def _heldout_only_words(world) -> set[str]:
    """Literal words of held-out forms that no training form and no concept uses."""
    train, held = set(), set()
    for forms in world.FORMS:
        assert isinstance(forms, Forms)
        for f in forms.train:
            train |= set(form_words(f))
        for f in forms.heldout:
            held |= set(form_words(f))
    concept = {
        w
        for c in world.LEXICON.concepts.values()
        for x in (*c.train, *c.heldout)
        for w in normalise(x)
    }
    return held - train - concept - {"a", "an", "the"}  # articles follow the next word


@pytest.mark.parametrize("world", WORLDS, ids=lambda w: w.__name__.split(".")[-1])
def test_no_heldout_word_or_form_in_training_captions(world):
    rng = np.random.default_rng(0)
    heldout_words = world.LEXICON.heldout_words()
    only = _heldout_only_words(world)
    assert heldout_words and only, "a grammar must hold some words and some forms out"
    for i, truth in enumerate(_truths(world, rng, 1500)):
        text = world.caption(truth, rng, "train", noisy=i % 2 == 0)
        for w in heldout_words:
            assert not contains_phrase(text, w), (w, text)
        assert not only & set(normalise(text)), (only & set(normalise(text)), text)
    for forms in world.FORMS:
        assert not set(forms.train) & set(forms.heldout)


@pytest.mark.parametrize("world", WORLDS, ids=lambda w: w.__name__.split(".")[-1])
def test_heldout_captions_use_heldout_words_and_canonical_is_fixed(world):
    rng = np.random.default_rng(1)
    truths = _truths(world, rng, 200)
    held = [world.caption(t, rng, "heldout") for t in truths]
    words = world.LEXICON.heldout_words()
    only = _heldout_only_words(world)
    new = sum(
        any(contains_phrase(h, w) for w in words) or bool(only & set(normalise(h))) for h in held
    )
    assert new >= 0.9 * len(held)
    for t in truths[:20]:
        assert world.caption(t) == world.caption(t, np.random.default_rng(5), "canonical")


@pytest.mark.parametrize("world", WORLDS, ids=lambda w: w.__name__.split(".")[-1])
def test_vocabulary_knows_every_training_word_and_maps_synonyms_together(world):
    encoder = WordTextEncoder(vocab=world.text_vocabulary(), width=32, depth=1, heads=2)
    rng = np.random.default_rng(2)
    for truth in _truths(world, rng, 300):
        assert UNK not in encoder.ids(world.caption(truth, rng, "train", noisy=False))
    for concept in world.LEXICON.concepts.values():
        ids = {tuple(encoder.ids(w)) for w in (*concept.train, *concept.heldout)}
        assert len(ids) == 1 and len(next(iter(ids))) == 1, concept


def test_shapes_captions_name_every_attribute_in_every_phrasing():
    rng = np.random.default_rng(3)
    lex = shapes.LEXICON
    for phrasing in ("canonical", "train", "heldout"):
        for _ in range(300):
            s = shapes.sample_scene(rng, "heldout")
            text = shapes.caption(s, rng, phrasing, noisy=False)
            for o in s.objects:
                for attr in (o.shape, o.colour, o.size):
                    w = lex[attr]
                    assert any(contains_phrase(text, x) for x in (*w.train, *w.heldout)), text
            others = set(shapes.COLOURS) - {o.colour for o in s.objects} - {s.background}
            for c in others:  # no colour the scene does not have
                w = lex[c]
                assert not any(contains_phrase(text, x) for x in (*w.train, *w.heldout)), text
