"""The digits world's captions: scikit-learn's 1,797 real handwritten digit scans (the media,
see ``training/data.py:DigitsSource``), described in the grammar of ``grammar.py``.

Concepts: the ten digits, each as a word ("seven") or a numeral ("7"), both in training
("nought" for 0 is held out).
Held out: the sentence forms of ``CAPTIONS.heldout`` ("the number 7", "draw a 7 please", ...),
whose new words ("number", "draw", "drawn", "pen" ...) never occur in a training caption.
"""

from __future__ import annotations

import numpy as np

from .grammar import Forms, Lexicon, Words, check_phrasing, finish, vocabulary

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LEXICON = Lexicon(
    {str(d): Words((NUMBER_WORDS[d], str(d)), ("nought",) if d == 0 else ()) for d in range(10)}
)
CAPTIONS = Forms(
    (
        "a handwritten {d}",  # canonical: what the bundled model was first trained on
        "the digit {d}",
        "a {d}",
        "handwritten digit {d}",
        "{d}",
        "a picture of the digit {d}",
        "write a {d}",
        "the numeral {d}",
        "digit {d}, handwritten",
        "a hand-written {d}",
        "an image of a handwritten {d}",
        "please write the digit {d}",
        "a scanned {d}",
        "{d}, written by hand",
        "a {d} in ink",
    ),
    (
        "the number {d}",
        "draw a {d} please",
        "a hand-drawn {d}",
        "number {d}",
        "can you draw a {d}",
        "i want to see the number {d}",
        "a {d} drawn with a pen",
    ),
)


def caption(
    label: int, rng: np.random.Generator | None = None, phrasing: str = "train", noisy: bool = True
) -> str:
    """A truthful caption of a scan of ``label`` (the canonical one without an rng)."""
    check_phrasing(phrasing)
    if rng is None:
        phrasing = "canonical"
    text = CAPTIONS.pick(phrasing, rng).format(d=LEXICON.word(str(label), phrasing, rng))
    return finish(text, phrasing, rng, noisy)


FORMS = (CAPTIONS,)


def legacy_caption(label: int, rng: np.random.Generator) -> str:
    """One of the four captions of earlier rounds (what the first digits-t2i read)."""
    word = NUMBER_WORDS[label]
    forms = (
        f"a handwritten {word}",
        f"the digit {label}",
        f"a {word}",
        f"handwritten digit {label}",
    )
    return forms[int(rng.integers(len(forms)))]


def text_vocabulary() -> dict[str, int]:
    """The vocabulary of a word-level text encoder for this world (grammar.vocabulary)."""
    return vocabulary(LEXICON, CAPTIONS.train)
