"""Per-token ground truth from a world's scene, for an auxiliary loss on the trunk.

The procedural worlds know exactly what sounds when. A flow model learns that only through the
squared velocity error, which barely separates "A4" from "A5" (one mel band in 80) and is read
off the text only near noise (README: "Does the model read its prompt?"). A masked model's
code cross-entropy did train the same text encoder to tell the notes apart (94% against 53%).
So the recipe field ``aux`` adds a small classifier on the hidden states of one block of the
trunk, trained with cross-entropy on these labels, as REPA (Yu et al. 2025) aligns a middle
block with a pretrained encoder's features and Ovi / MMAudio-style "plan" signals tie a
representation to the world's structure: the trunk must form, from x_t and the prompt, the
event each token belongs to. The head is training-only: exports and inference are unchanged.

Sounds: per 64 ms token, (timbre, note, onset):

* timbre: 0 silence, 1 + index in ``TIMBRES``;
* note: 0 none (silence, noise, click), 1 + semitones above C3 of the (root) note, or
  ``1 + 36`` rising / ``2 + 36`` falling for a chirp;
* onset: 1 where a sound starts inside the token.
"""

from __future__ import annotations

import numpy as np

from .world import sounds

SEMITONES = 36  # C3 .. B5
SOUNDS_CLASSES = (1 + len(sounds.TIMBRES), 1 + SEMITONES + len(sounds.DIRECTIONS), 2)
C3 = sounds.NOTES["C3"]


def note_class(event: sounds.Event) -> int:
    """The note label of one event (see the module docstring)."""
    if event.timbre == "chirp":
        return 1 + SEMITONES + sounds.DIRECTIONS.index(event.pitch)
    if event.pitch is None:
        return 0
    return 1 + round(12 * np.log2(sounds.NOTES[event.pitch] / C3))


def sounds_labels(scene: sounds.SoundScene, token_seconds: float, n: int) -> np.ndarray:
    """(n, 3) int64 labels of ``n`` tokens of ``token_seconds`` each: the sound sounding at
    each token's centre (the later one where two overlap), and whether one starts inside it."""
    out = np.zeros((n, 3), dtype=np.int64)
    centres = (np.arange(n) + 0.5) * token_seconds
    for s in scene.sounds:
        e = scene.events[s.event]
        on = (centres >= s.start) & (centres < s.end)
        out[on, 0] = 1 + sounds.TIMBRES.index(e.timbre)
        out[on, 1] = note_class(e)
        first = int(s.start // token_seconds)
        if first < n:
            out[first, 2] = 1
    return out
