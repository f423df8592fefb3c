"""A small transformer over words, with a vocabulary built from a world's caption grammar.

Why not bytes: a byte-level encoder trained on a few caption templates learns where in the
string an attribute sits, not which word names it (putting "there is " in front of a caption
moved every byte and broke the bundled model). Over words, "a large red triangle near the top"
and "there is a triangle, red and large, at the top" are the same few tokens in another order.

The vocabulary maps phrases (one to four lower-case words) to ids and is stored in the config,
so a folder needs no vocabulary file. Synonyms share an id (the grammar's lexicon is part of
the vocabulary, as a thesaurus is). Reading a prompt: lower case, split into words (``WORD``),
longest known phrase first; a word it does not know is matched to the closest known word when
one is close enough (a typo: two neighbouring letters swapped, or difflib's ratio >= 0.8;
words of 4+ letters), else it becomes ``<unk>``, which training teaches the model to read
past.

Unconditional prompt: ``""`` is one learned ``<null>`` token, as in the byte encoder.
"""

from __future__ import annotations

import difflib
import re

import torch
from torch import nn

from dit.pretrained import Pretrained, register_to_config

from .byte_encoder import ByteBlock, TokenEncoder
from .text import check_prompts, warn_truncated

PAD, NULL, UNK = 0, 1, 2  # the first three ids of every vocabulary
SPECIALS = ("<pad>", "<null>", "<unk>")
TYPO_CUTOFF = 0.8
MIN_TYPO_LENGTH = 4


# A word: letters with optional trailing digits ("a4", a note) or a number ("7", "0.5").
WORD = re.compile(r"[0-9]+(?:\.[0-9]+)?|[a-z]+[0-9]*")


def split_words(text: str) -> list[str]:
    """Lower case words (``WORD``); everything else separates them."""
    return WORD.findall(text.lower())


class WordVocab:
    """Phrase -> id lookup: longest known phrase first, typos to the nearest known word, else
    ``<unk>``. ``known`` words map to ``<unk>`` too but count as words of the world (a prompt
    rewriter keeps prompts with truly unknown words as typed)."""

    def __init__(self, vocab: dict[str, int], known: tuple[str, ...] = ()) -> None:
        if [vocab.get(s) for s in SPECIALS] != [PAD, NULL, UNK]:
            raise ValueError(f"vocab must map {SPECIALS} to ids 0, 1, 2")
        self.vocab = dict(vocab) | {w: UNK for w in known if w not in vocab}
        if "a" in self.vocab and "an" in self.vocab:
            # "an" is "a" before a vowel: it says nothing of the next word's meaning, but a
            # model trained on it learns "an" -> "orange", the one vowel-initial colour, and
            # misreads "an emerald disc" (held-out exact match 81.6% -> 83.2% without it)
            self.vocab["an"] = self.vocab["a"]
        self.longest = max(len(k.split()) for k in self.vocab)
        self.words = [k for k in self.vocab if " " not in k and k not in SPECIALS]
        self._lookup: dict[str, int | None] = {}

    def word_id(self, word: str) -> int | None:
        """The id of one word that is no phrase: itself, its nearest spelling, or None."""
        if word in self.vocab:
            return self.vocab[word]
        if word not in self._lookup:
            close = []
            if len(word) >= MIN_TYPO_LENGTH and word.isalpha():
                # Two neighbouring letters swapped, the commonest typing error (Damerau 1964):
                # difflib's ratio scores "tniy" / "tiny" 0.75, under the cutoff.
                swaps = (
                    word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)
                )
                close = [w for w in swaps if w in self.vocab][:1]
                close = close or difflib.get_close_matches(
                    word, self.words, n=1, cutoff=TYPO_CUTOFF
                )
            self._lookup[word] = self.vocab[close[0]] if close else None
        return self._lookup[word]

    def spans(self, prompt: str) -> list[tuple[int | None, int, int]]:
        """(id or None for an unknown word, start, end) per token of ``prompt``."""
        words = list(WORD.finditer(prompt.lower()))
        out, i = [], 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 0, -1):
                phrase = " ".join(m[0] for m in words[i : i + n])
                if n == 1 or phrase in self.vocab:
                    token = self.vocab[phrase] if n > 1 else self.word_id(phrase)
                    out.append((token, words[i].start(), words[i + n - 1].end()))
                    i += n
                    break
        return out

    def ids(self, prompt: str, max_length: int, index: int = 0) -> list[int]:
        """Token ids of one prompt (unknown words as ``<unk>``); ``[NULL]`` for ``""``."""
        if not prompt:
            return [NULL]
        out = [UNK if i is None else i for i, _, _ in self.spans(prompt)] or [UNK]
        if len(out) > max_length:
            warn_truncated(index, len(out), max_length, max_length, "tokens")
            out = out[:max_length]
        return out

    def pad(self, rows: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of ids -> ids (B, L) long padded with PAD, and mask (B, L) bool."""
        longest = max(len(r) for r in rows)
        ids = torch.full((len(rows), longest), PAD, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids.to(device), (ids != PAD).to(device)


class WordTextEncoder(TokenEncoder, Pretrained):
    """Words -> (tokens (B, L, width), mask (B, L), pooled (B, pooled_dim)).

    vocab: phrase -> id, ids 0-2 being ``<pad>``, ``<null>``, ``<unk>``. max_length counts
    tokens (phrases). pooled_dim: ``None`` means ``width``.
    """

    @register_to_config
    def __init__(
        self,
        vocab: dict[str, int] | None = None,
        width: int = 128,
        depth: int = 2,
        heads: int = 4,
        max_length: int = 48,
        pooled_dim: int | None = None,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        vocab = dict(vocab or {s: i for i, s in enumerate(SPECIALS)})
        self.words = WordVocab(vocab)
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        if max_length < 2:
            raise ValueError(f"max_length={max_length} must be >= 2 tokens")
        self.vocab = vocab
        self.width = width
        self.pooled_dim = pooled_dim or width
        self.max_length = max_length
        self.embed = nn.Embedding(max(vocab.values()) + 1, width)
        self.pos = nn.Parameter(torch.zeros(max_length, width))
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(ByteBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.pool = nn.Linear(width, self.pooled_dim)

    def ids(self, prompt: str, index: int = 0) -> list[int]:
        return self.words.ids(prompt, self.max_length, index)

    def spans(self, prompt: str) -> list[tuple[int, int, int]]:
        return [(UNK if i is None else i, a, b) for i, a, b in self.words.spans(prompt)]

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> ids (B, L) long, padded with PAD, and mask (B, L) bool, on this device."""
        return self.pad([self.ids(p, i) for i, p in enumerate(check_prompts(prompts))])

    def pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.words.pad(rows, self.device)
