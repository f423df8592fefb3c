"""Lexically constrained decoding of a rewrite (conditioning/constrained.py), on hand-made
log-probabilities whose best free caption is known to be wrong."""

from collections import Counter

import torch

from conditioning.constrained import attribute_slots, keep_attributes
from conditioning.rewriter import PromptRewriter

# Output words: 0 <pad>, 1 a, sizes 2 small / 3 large, colours 4 red / 5 blue, 6 "and".
SIZES, COLOURS = [2, 3], [4, 5]
# Two templates: "a SIZE COLOUR" and "a SIZE COLOUR and a SIZE COLOUR".
ONE = [[1], SIZES, COLOURS]
TWO = [[1], SIZES, COLOURS, [6], [1], SIZES, COLOURS]
ALLOWED = PromptRewriter._allowed([ONE, TWO], 8, 7)  # (T=2, Q=8, V=7)
SLOTS = attribute_slots(ALLOWED, [SIZES, COLOURS])


def logp_of(rows: dict[int, dict[int, float]]) -> torch.Tensor:
    """(Q=8, V=7) log-probs: -10 everywhere but the given (position -> word -> value)."""
    out = torch.full((8, 7), -10.0)
    for q, words in rows.items():
        for w, v in words.items():
            out[q, w] = v
    return out


def test_slots_are_the_positions_choosing_among_one_attributes_words():
    assert SLOTS == [[[1], [2]], [[1, 5], [2, 6]]]


def test_a_word_the_prompt_never_named_is_not_written():
    # The model prefers "blue" (a default) for a prompt that says "red": the constraint writes red.
    logp = logp_of({0: {1: 0}, 1: {2: 0}, 2: {5: -0.1, 4: -3}, 3: {0: 0}})
    kept = keep_attributes(logp, ALLOWED, SLOTS, [Counter({2: 1}), Counter({4: 1})])
    assert kept[:3] == [1, 2, 4]


def test_two_named_objects_get_the_two_object_caption():
    # The model drops the second object (ends after three words); the prompt names two sizes
    # and two colours, so only the two-object template is exact.
    logp = logp_of({0: {1: 0}, 1: {2: 0}, 2: {4: 0}, 3: {0: 0, 6: -4}, 4: {1: -1}})
    logp[5, 3], logp[6, 5] = -2.0, -2.0
    named = [Counter({2: 1, 3: 1}), Counter({4: 1, 5: 1})]
    kept = keep_attributes(logp, ALLOWED, SLOTS, named)
    assert kept[:7] == [1, 2, 4, 6, 1, 3, 5]


def test_binding_prefers_the_objects_whose_words_sit_together_in_the_prompt():
    # "small red ... large blue": the model is unsure which colour goes with which size.
    logp = logp_of({0: {1: 0}, 3: {6: 0}, 4: {1: 0}, 7: {0: 0}})
    logp[1, 2] = logp[5, 3] = 0.0  # sizes: small first, large second (sure)
    logp[2, 5], logp[2, 4], logp[6, 4], logp[6, 5] = -0.1, -0.2, -0.1, -0.2  # colours crossed
    named = [Counter({2: 1, 3: 1}), Counter({4: 1, 5: 1})]
    where = {2: [0], 4: [1], 3: [5], 5: [6]}  # small@0 red@1 ... large@5 blue@6
    free = keep_attributes(logp, ALLOWED, SLOTS, named, where, binding=0.0)
    bound = keep_attributes(logp, ALLOWED, SLOTS, named, where, binding=1.0)
    assert free[:7] == [1, 2, 5, 6, 1, 3, 4]  # the model's crossed colours
    assert bound[:7] == [1, 2, 4, 6, 1, 3, 5]


def test_more_named_words_than_slots_pick_among_them_and_impossible_ones_give_none():
    named = [Counter({2: 2, 3: 1}), Counter()]  # three sizes: no template has three slots
    logp = logp_of({0: {1: 0}, 1: {3: 0}, 2: {4: 0}, 3: {0: 0}})
    kept = keep_attributes(logp, ALLOWED, SLOTS, named)
    assert kept is not None and kept[1] in (2, 3)  # lenient: one of the named sizes
    none = keep_attributes(logp, ALLOWED, SLOTS, [Counter({6: 1}), Counter()])  # not a size
    assert none is None  # the caller decodes by the templates alone


def test_a_colour_of_the_background_does_not_make_a_second_object():
    # Shapes 7 disc / 8 box added: "a small red disc ... on a blue backdrop" names one size, one
    # shape, two colours. The model leans to two objects, but a second one would need a size
    # and a shape nobody named (two mismatches against one): one object.
    shapes = [7, 8]
    allowed = PromptRewriter._allowed(
        [
            [[1], SIZES, COLOURS, shapes],
            [[1], SIZES, COLOURS, shapes, [6], [1], SIZES, COLOURS, shapes],
        ],
        10,
        9,
    )
    slots = attribute_slots(allowed, [SIZES, COLOURS, shapes])
    logp = torch.full((10, 9), -10.0)
    for q, w in enumerate([1, 2, 4, 7, 6, 1, 2, 5, 8]):
        logp[q, w] = 0.0
    logp[4, 0] = -0.5  # ending after one object: a little less likely to the model
    named = [Counter({2: 1}), Counter({4: 1, 5: 1}), Counter({7: 1})]
    assert keep_attributes(logp, allowed, slots, named)[:5] == [1, 2, 4, 7, 0]
    # the same prompt naming a second size and shape: two objects
    named = [Counter({2: 2}), Counter({4: 1, 5: 1}), Counter({7: 1, 8: 1})]
    assert keep_attributes(logp, allowed, slots, named)[:9] == [1, 2, 4, 7, 6, 1, 2, 5, 8]
