"""Captions as people write them: the grammar machinery every world shares.

A world describes a scene with *concepts* (a colour, a size, a place ...) and *sentence forms*
(templates with a slot per concept). Both are split in two: a concept's surface words, and a
world's forms, are either **train** (used in training captions) or **held out** (used only to
evaluate). A model scored on held-out phrasings is scored on words and word orders it never
saw in that combination, not on strings it memorised.

Three phrasings of one scene (``PHRASINGS``):

* ``canonical``: the world's first form with every concept's first word, no noise (what the
  models of earlier rounds were trained on; deterministic);
* ``train``: any training form and training word, optional filler, case and punctuation noise
  and, at a low rate, typos;
* ``heldout``: a held-out form, and a held-out word for every concept that has one.

Every caption stays truthful: forms and words only say what the scene's ground truth says.

A :class:`Lexicon` also gives the vocabulary a word-level text encoder is built from
(:func:`vocabulary`): every surface word of a concept, train or held out, names that concept
(the lexicon is the thesaurus), and the function words of the training forms name themselves;
words seen nowhere are unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from conditioning.word_encoder import split_words

PHRASINGS = ("canonical", "train", "heldout")

TYPO_RATE = 0.02  # per word of 4+ letters, in training captions only
ARTICLE_DROP = 0.15  # "a red circle" -> "red circle", training captions only
# Finite verbs of the worlds' forms: a caption holding one is a clause, which no frame wraps.
FINITE = {
    "bounces",
    "blinks",
    "moves",
    "collide",
    "meet",
    "grows",
    "shrinks",
    "changes",
    "bumps",
    "flashes",
    "is",
    "are",
    "keeps",
    "hits",
    "comes",
}
NOUN_PHRASE = re.compile(r"(an?|one|two|the) ")  # a caption that a frame can wrap


def check_phrasing(phrasing: str) -> None:
    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing={phrasing!r}; choose one of {list(PHRASINGS)}")


@dataclass(frozen=True)
class Words:
    """The surface words of one concept: ``train[0]`` is the canonical one."""

    train: tuple[str, ...]
    heldout: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.train:
            raise ValueError("a concept needs at least one training word")
        if set(self.train) & set(self.heldout):
            raise ValueError(f"{set(self.train) & set(self.heldout)} is both train and held out")


@dataclass(frozen=True)
class Forms:
    """A world's sentence forms of one kind: ``train[0]`` is the canonical one."""

    train: tuple[str, ...]
    heldout: tuple[str, ...] = ()

    def pick(self, phrasing: str, rng: np.random.Generator | None) -> str:
        check_phrasing(phrasing)
        if phrasing == "canonical" or rng is None:
            return self.train[0]
        pool = self.heldout if phrasing == "heldout" and self.heldout else self.train
        return pool[int(rng.integers(len(pool)))]


class Lexicon:
    """Concept name -> :class:`Words`; ``word`` picks a surface word for a phrasing."""

    def __init__(self, concepts: Mapping[str, Words]) -> None:
        self.concepts = dict(concepts)

    def __getitem__(self, concept: str) -> Words:
        return self.concepts[concept]

    def word(self, concept: str, phrasing: str, rng: np.random.Generator | None) -> str:
        w = self.concepts[concept]
        if phrasing == "canonical" or rng is None:
            return w.train[0]
        pool = w.heldout if phrasing == "heldout" and w.heldout else w.train
        return pool[int(rng.integers(len(pool)))]

    def merged(self, other: Lexicon) -> Lexicon:
        """Both lexicons' concepts (a world built on another's words: video on shapes)."""
        clash = {
            k
            for k in set(self.concepts) & set(other.concepts)
            if self.concepts[k] != other.concepts[k]
        }
        if clash:
            raise ValueError(f"concepts {sorted(clash)} differ between the lexicons")
        return Lexicon({**self.concepts, **other.concepts})

    def canonicalise(self, text: str) -> str:
        """Every concept's words replaced by its canonical word, lower case (longest first):
        what tests read back to check a caption is truthful."""
        text = " ".join(normalise(text))
        pairs = [
            (" ".join(normalise(w)), words.train[0])
            for words in self.concepts.values()
            for w in (*words.train, *words.heldout)
        ]
        for surface, canonical in sorted(pairs, key=lambda p: -len(p[0])):
            text = re.sub(rf"(?<![\w.]){re.escape(surface)}(?![\w.])", canonical, text)
        return text

    def heldout_words(self) -> set[str]:
        return {w for words in self.concepts.values() for w in words.heldout}


def normalise(text: str) -> list[str]:
    """The words of a text as the word-level encoder reads them (hyphens and punctuation
    separate words; "A4" and "0.5" are one word each)."""
    return split_words(text)


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether the words of ``phrase`` occur consecutively among the words of ``text``."""
    words, target = normalise(text), normalise(phrase)
    n = len(target)
    return any(words[i : i + n] == target for i in range(len(words) - n + 1))


def form_words(form: str) -> list[str]:
    """The literal words of a form, slots removed: what a held-out form adds to a caption."""
    return normalise(re.sub(r"\{[^}]*\}", " ", form))


def fix_articles(text: str) -> str:
    """'a orange' -> 'an orange' (and back), at every article."""
    text = re.sub(r"\b([Aa])n? (?=[aeiouAEIOU])", r"\1n ", text)
    return re.sub(r"\b([Aa])n (?=[^aeiouAEIOU\W])", r"\1 ", text)


def _typo(word: str, rng: np.random.Generator) -> str:
    """One edit: drop, double or swap a letter inside the word."""
    i = int(rng.integers(1, len(word) - 1))
    kind = int(rng.integers(3))
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


def noise(text: str, rng: np.random.Generator) -> str:
    """What people do to captions: articles dropped, capitals, a full stop, rare typos. Typos
    never touch digits or words under four letters, so every caption stays truthful."""
    if rng.random() < ARTICLE_DROP:
        text = re.sub(r"\b(a|an|the) ", "", text)
    words = text.split(" ")
    for i, w in enumerate(words):
        if len(w) >= 4 and w.isalpha() and rng.random() < TYPO_RATE:
            words[i] = _typo(w, rng)
    text = " ".join(words)
    r = rng.random()
    if r < 0.2:
        text = text[:1].upper() + text[1:]
    elif r < 0.25:
        text = text.upper()
    end = rng.random()
    if end < 0.15:
        text += "."
    elif end < 0.2:
        text += "!"
    return text


def finish(text: str, phrasing: str, rng: np.random.Generator | None, noisy: bool = True) -> str:
    """Tidy a filled-in form: spaces, articles; training captions get :func:`noise` unless
    ``noisy`` is False (tests that read the words back)."""
    text = fix_articles(re.sub(r"\s+", " ", text).strip().replace(" ,", ","))
    if phrasing == "train" and rng is not None and noisy:
        text = noise(text, rng)
    return text


def frame(
    text: str, frames: Forms, phrasing: str, rng: np.random.Generator | None, rate: float = 0.3
) -> str:
    """Optional filler around a caption that is a noun phrase ("a picture of ...", "please
    draw ..."): never in the canonical phrasing, in a share ``rate`` of training captions and
    half of the held-out ones (held-out frames there: they are part of the test)."""
    if phrasing == "canonical" or rng is None or not NOUN_PHRASE.match(text):
        return text
    if rng.random() >= (rate if phrasing == "train" else 0.5):
        return text
    return frames.pick(phrasing, rng).format(text)


def substitute(text: str, lexicon: Lexicon, phrasing: str, rng: np.random.Generator | None) -> str:
    """Replace each concept's canonical word in ``text`` by a word of the phrasing (worlds
    whose captions are built from canonical words first: sounds, motion, audio+video)."""
    if phrasing == "canonical" or rng is None:
        return text
    for name, words in lexicon.concepts.items():
        canonical = words.train[0]
        pattern = rf"\b{re.escape(canonical)}\b"
        if re.search(pattern, text):
            text = re.sub(pattern, lambda _m, n=name: lexicon.word(n, phrasing, rng), text)
    return text


def rephrase(
    text: str,
    lexicon: Lexicon,
    frames: Forms,
    phrasing: str,
    rng: np.random.Generator | None,
    noisy: bool = True,
) -> str:
    """A caption written with canonical words, in ``phrasing``: words substituted, an optional
    frame (only around a noun phrase: no finite verb of ``FINITE``), then tidied (and noised
    when training)."""
    check_phrasing(phrasing)
    if rng is None:
        phrasing = "canonical"
    framable = not FINITE & set(normalise(text))
    text = substitute(text, lexicon, phrasing, rng)
    if framable:
        text = frame(text, frames, phrasing, rng)
    return finish(text, phrasing, rng, noisy)


def pick_form(
    forms: Forms, phrasing: str, rng: np.random.Generator | None, heldout_share: float = 0.5
) -> str:
    """A sentence form for a world whose held-out test is words as well as forms: held-out
    captions take a held-out form ``heldout_share`` of the time, else a training form (whose
    words are then substituted with held-out ones)."""
    if phrasing == "heldout" and rng is not None and rng.random() >= heldout_share:
        return forms.pick("train", rng)
    return forms.pick(phrasing, rng)


# --- vocabulary of a word-level encoder -----------------------------------------------------

SPECIALS = ("<pad>", "<null>", "<unk>")


def vocabulary(lexicon: Lexicon, training_forms: Iterable[str]) -> dict[str, int]:
    """Phrase (space-joined normalised words) -> token id, for a word-level text encoder,
    built from the grammar itself (never from sampled captions, whose typos are noise).

    Every surface word of a concept, train or held out, maps to the concept's one id: the
    lexicon is part of the vocabulary, as a thesaurus is. Any other word of a *training* form
    gets an id of its own; the literal words of held-out forms stay unknown. Ids 0-2 are
    ``SPECIALS``.
    """
    vocab: dict[str, int] = {s: i for i, s in enumerate(SPECIALS)}
    next_id = len(SPECIALS)
    for words in lexicon.concepts.values():
        for w in (*words.train, *words.heldout):
            vocab.setdefault(" ".join(normalise(w)), next_id)  # shared words keep the first
        next_id += 1
    for form in training_forms:
        for w in form_words(form):
            if w not in vocab:
                vocab[w] = next_id
                next_id += 1
    return vocab


def sampled_vocabulary(
    lexicon: Lexicon,
    forms: Iterable[Forms],
    sample,
    caption,
    extra: Iterable[str] = (),
    n: int = 2000,
) -> dict[str, int]:
    """:func:`vocabulary` of a world whose slots are filled with words no form spells out
    (adverbs, counts, note names): the literal words of ``n`` clean training captions of
    ``sample(rng)`` join the training forms and ``extra``."""
    rng = np.random.default_rng(0)
    filled = [caption(sample(rng), rng, noisy=False) for _ in range(n)]
    return vocabulary(lexicon, (*filled, *extra, *(f for fs in forms for f in fs.train)))
