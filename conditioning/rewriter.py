"""A learned prompt rewriter: any phrasing of a world's language -> the caption form its model
was trained on (DALL-E 3's "caption upsampling" in miniature, trained on the world's grammar).

Why: a text-to-media model follows the captions it was trained on. Teaching its text encoder
new phrasings means re-distilling the whole text path through the transformer; a rewriter is a
small transformer over words that learns the grammar itself (minutes on a CPU, no media), and
the model behind it keeps every score it had on its own captions.

Architecture: the prompt's word tokens (``WordVocab``: synonyms share an id, typos go to the
nearest known word) and ``out_len`` learned query tokens run through joint self-attention
blocks (the studio's one attention seam); each query predicts one word of the output, ``<pad>``
after the last (parallel decoding: the output is a function of the meaning, so there is no
ambiguity for an autoregressive decoder to resolve).

Decoding reads the prompt twice, as typed and with its ``<unk>`` words left out (structure
words the world lacks: "near", "that", "you can see"), and adds the two log-probabilities
(test-time augmentation). With ``templates`` (each a list of the output words allowed at each
position, recorded from the world's canonical captions when the rewriter is built) it picks
the best caption any template allows: the sum of each position's best allowed log-probability,
the argmax over templates (grammar-constrained decoding, as outlines or llama.cpp's grammars
do for language models; exact here, since the positions are decoded independently). A caption
then never stops half way ("a red circle to the left of a").

A prompt with a word the world does not know at all (not in the vocabulary, not a typo of a
word in it: "teal", "cat") is passed on as typed: the rewriter only speaks its world's words,
and an adapter may know the new one. ``""`` (the unconditional prompt) stays ``""``.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from dit.pretrained import Pretrained, register_to_config
from dit.rope import rope_angles, rope_cos_sin

from .byte_encoder import ByteBlock
from .constrained import BINDING, attribute_slots, keep_attributes
from .text import check_prompts
from .word_encoder import SPECIALS, UNK, WordVocab


class PromptRewriter(Pretrained):
    """Prompts -> prompts in the caption form of one world (see the module docstring).

    vocab: input phrase -> id (ids 0-2 are ``SPECIALS``); known: world words that map to
    ``<unk>`` (seen in no training caption) but are not unknown; out_words: the output words,
    index 0 = ``<pad>`` (end).
    """

    @register_to_config
    def __init__(
        self,
        vocab: dict[str, int] | None = None,
        out_words: list[str] | None = None,
        known: list[str] | None = None,
        width: int = 128,
        depth: int = 3,
        heads: int = 4,
        max_length: int = 48,
        out_len: int = 24,
        mlp_ratio: float = 4.0,
        rotary: int = 0,
        templates: list[list[list[int]]] | None = None,
        attributes: list[list[int]] | None = None,
        implied: list[list[list[int]]] | None = None,
    ) -> None:
        super().__init__()
        vocab = dict(vocab or {s: i for i, s in enumerate(SPECIALS)})
        out_words = list(out_words or ["<pad>"])
        if out_words[0] != "<pad>":
            raise ValueError("out_words[0] must be '<pad>' (the end of the output)")
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        if not isinstance(rotary, int) or rotary < 0 or rotary % 2 or rotary > width // heads:
            raise ValueError(
                f"rotary={rotary!r}: give an even number of rotated dims per head, "
                f"at most width/heads={width // heads} (0 = learned absolute "
                "positions)"
            )
        self.rotary = rotary
        self.words = WordVocab(vocab, tuple(known or ()))
        self.out_words = out_words
        self.max_length, self.out_len = max_length, out_len
        self.embed = nn.Embedding(max(vocab.values()) + 1, width)
        self.pos = nn.Parameter(torch.zeros(max_length, width))
        self.queries = nn.Parameter(torch.zeros(out_len, width))
        for p in (self.embed.weight, self.pos, self.queries):
            nn.init.normal_(p, std=0.02)
        self.blocks = nn.ModuleList(ByteBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, len(out_words))
        self.register_buffer(
            "allowed", self._allowed(templates or [], out_len, len(out_words)), persistent=False
        )  # (T, Q, V) bool; T = 0: unconstrained
        # Attributes a rewrite keeps (``conditioning/constrained.py``): input id of each
        # attribute word -> (attribute, output id), and each template's slots for them.
        attributes = [list(a) for a in attributes or []] if len(self.allowed) else []
        self.named = {
            self.words.vocab[out_words[w]]: (a, w)
            for a, words in enumerate(attributes)
            for w in words
            if out_words[w] in self.words.vocab
        }
        self.slots = attribute_slots(self.allowed, attributes) if attributes else []
        # Per template, per object: the output words its form implies for that object but
        # writes in no slot ("A to the left of B": A is on the left, B on the right).
        self.implied = [[list(o) for o in t] for t in implied or []]
        self.binding = BINDING

    @staticmethod
    def _allowed(templates: list[list[list[int]]], out_len: int, n_words: int) -> torch.Tensor:
        """(T, Q, V): which output word each template allows at each position (``<pad>`` alone
        after its last word)."""
        allowed = torch.zeros(len(templates), out_len, n_words, dtype=torch.bool)
        for t, template in enumerate(templates):
            if len(template) > out_len or not all(template):
                raise ValueError(
                    f"template {t}: {len(template)} positions (at most out_len="
                    f"{out_len}), each allowing at least one word"
                )
            for i, words in enumerate(template):
                if not all(0 < w < n_words for w in words):
                    raise ValueError(
                        f"template {t} position {i}: word ids must be in 1..{n_words - 1}"
                    )
                allowed[t, i, list(words)] = True
            allowed[t, len(template) :, 0] = True
        return allowed

    def _rows(self, prompts: list[str]) -> list[list[int]]:
        return [self.words.ids(p, self.max_length, i) for i, p in enumerate(prompts)]

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.words.pad(self._rows(prompts), self.device)

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """ids, mask: (B, L); offset: (B,) first position of each row (training shifts rows so
        every position embedding learns every place in a prompt; 0 when rewriting). Returns
        logits (B, out_len, len(out_words))."""
        b, n = ids.shape
        at = torch.arange(n, device=ids.device)[None] + (0 if offset is None else offset[:, None])
        x = self.embed(ids)  # (B, L, D)
        rope = None
        if self.rotary:
            # Relative positions: word-to-word scores depend on offsets only, so a held-out
            # phrasing longer than any training one reads its late words as it reads early
            # ones. The output queries sit at position 0; they find words by content (the
            # unrotated dims), which the model learns to use for them.
            pos = torch.cat([at.expand(b, -1), at.new_zeros(b, self.out_len)], 1)  # (B, L + Q)
            angles = rope_angles(pos[..., None].float(), (self.rotary,), 10_000.0, (1.0,))
            rope = rope_cos_sin(angles, x.dtype)  # (B, L + Q, 1, R/2) each
        else:
            x = x + self.pos[at.clamp(max=self.max_length - 1)]
        q = self.queries.expand(b, -1, -1)  # (B, Q, D)
        h = torch.cat([x, q], 1)  # (B, L + Q, D)
        m = torch.cat([mask, mask.new_ones(b, self.out_len)], 1)  # (B, L + Q)
        for block in self.blocks:
            h = block(h, m, rope)
        return self.head(self.norm(h[:, n:]))  # (B, Q, V)

    def knows(self, prompt: str) -> bool:
        """Every word of ``prompt`` is a word of the world (or a typo of one)."""
        return all(token is not None for token, _, _ in self.words.spans(prompt))

    @torch.no_grad()
    def decode(self, prompts: list[str]) -> torch.Tensor:
        """(B, Q) output word ids: the prompt as typed and without its ``<unk>`` words, their
        log-probabilities added, then the best caption a template allows (module docstring)."""
        rows = self._rows(prompts)
        known = [[t for t in r if t != UNK] or r for r in rows]
        logp = sum(self(*self.words.pad(r, self.device)).log_softmax(-1) for r in (rows, known))
        if not len(self.allowed):
            return logp.argmax(-1)
        masked = logp[:, None].masked_fill(~self.allowed, float("-inf"))  # (B, T, Q, V)
        best, words = masked.max(-1)  # (B, T, Q) each
        template = best.sum(-1).argmax(-1)  # (B,)
        out = words[torch.arange(len(rows)), template]  # (B, Q)
        for b, row in enumerate(rows if self.slots else []):
            named = [Counter() for _ in self.slots[0]]
            where: dict[int, list[int]] = {}  # output word -> its places in the prompt
            for i, token in enumerate(row):
                if token in self.named:
                    a, w = self.named[token]
                    named[a][w] += 1
                    where.setdefault(w, []).append(i)
            kept = keep_attributes(
                logp[b], self.allowed, self.slots, named, where, self.binding, self.implied
            )
            if kept is not None:
                out[b] = torch.tensor(kept)
        return out

    @torch.no_grad()
    def rewrite(self, prompts: list[str]) -> list[str]:
        """Each prompt in the world's caption form; ``""`` and prompts with unknown words as
        they are."""
        prompts = check_prompts(prompts)
        todo = [i for i, p in enumerate(prompts) if p.strip() and self.knows(p)]
        out = list(prompts)
        if not todo:
            return out
        best = self.decode([prompts[i] for i in todo]).tolist()  # (B, Q)
        for i, row in zip(todo, best, strict=True):
            words = []
            for w in row:
                if w == 0:
                    break
                words.append(self.out_words[w])
            out[i] = " ".join(words) if words else prompts[i]
        return out
