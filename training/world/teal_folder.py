"""A colour the bundled shapes model never saw: teal scenes as a folder of images + captions.

The base world (``shapes.COLOURS``) is untouched, so the base model's training data stays as
it was. A teal scene is an ordinary scene in which every object of one chosen colour is drawn
in TEAL instead and captioned "teal". Next to each teal scene the folder holds its ordinary
twin (the same scene in its own colours and caption), and it mixes in ordinary scenes too,
DreamBooth's prior preservation with the world's renders: the adapter learns the new word as
a contrast with the colour it replaces instead of drifting on old words. The ordinary scenes
keep teal about as common as any one of the world's colours (1 image in 8): with teal in a
third of the images, the adapter painted teal a fifth of the red triangles the base model
draws from the never-seen pair "red triangle" (teal triangles had become the usual kind).

``python -m training.world.teal_folder OUT --n 400 --plain 2400`` writes OUT/00000.png + .txt.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from training.world.shapes import BACKGROUNDS, COLOURS, Scene, coverage, geometry, render
from training.world.shapes import legacy_caption as caption  # the adapter was trained on these
from training.world.shapes import sample_scene as sample_base_scene

# Dark cyan: 106 from green, 119 from blue, 128 from grey; as far from its neighbours as the
# world's closest pair (106), so the scorer's nearest-colour reading tells it apart.
TEAL = (0, 140, 140)
EXTRA_COLOURS: dict[str, tuple[int, int, int]] = {"teal": TEAL}
# The scorer's table for scenes that may show teal (the base world's plus the new one).
ALL_COLOURS = {**COLOURS, **EXTRA_COLOURS}

# Small teal crosses are never in the training folder: the evaluation asks for them anyway, so
# it measures the new colour on a (shape, size) the adapter only saw in other colours.
UNSEEN = ("cross", "small")
TRAIN_SEED, EVAL_SEED = 0, 777


@dataclass(frozen=True)
class TealScene:
    """A base scene whose objects of colour ``stand_in`` are drawn and captioned teal."""

    scene: Scene
    stand_in: str

    def colours(self) -> tuple[str, ...]:
        return tuple("teal" if o.colour == self.stand_in else o.colour for o in self.scene.objects)

    def caption(self, rng: np.random.Generator | None = None) -> str:
        # The stand-in's name appears only for its objects: no object shares the background's.
        return re.sub(rf"\b{self.stand_in}\b", "teal", caption(self.scene, rng))

    def has_unseen(self) -> bool:
        return any(
            (o.shape, o.size) == UNSEEN and o.colour == self.stand_in for o in self.scene.objects
        )

    def render(self, size: int = 32) -> np.ndarray:
        """The base renderer's anti-aliasing, recomposited: teal objects over the background
        with their exact coverage (objects never overlap: the world keeps a gap)."""
        img = render(self.scene, size).astype(np.float32)
        bg = np.asarray(BACKGROUNDS[self.scene.background], np.float32)
        for o, g in zip(self.scene.objects, geometry(self.scene, size), strict=True):
            if o.colour == self.stand_in:
                a = coverage(o.shape, g, size)[..., None]
                img = np.where(a > 0, bg * (1 - a) + np.asarray(TEAL, np.float32) * a, img)
        return np.clip(np.round(img), 0, 255).astype(np.uint8)


def sample_teal(rng: np.random.Generator, split: str = "train") -> TealScene:
    """A teal scene. ``split="train"`` never has a teal UNSEEN (shape, size); "heldout" draws
    from every shape and size, UNSEEN included."""
    while True:
        scene = sample_base_scene(rng, "train")
        stand_in = scene.objects[int(rng.integers(len(scene.objects)))].colour
        teal = TealScene(scene, stand_in)
        if split == "heldout" or not teal.has_unseen():
            return teal


def write_folder(
    out: str | Path,
    n: int = 400,
    plain: int = 2400,
    seed: int = TRAIN_SEED,
    size: int = 32,
    twins: bool = True,
) -> Path:
    """``n`` teal scenes (each followed by its ordinary twin unless ``twins`` is False) and
    ``plain`` ordinary ones (base train split), as PNG + .txt."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1])
    items: list[tuple[np.ndarray, str]] = []
    for _ in range(n):
        teal = sample_teal(rng, "train")
        items.append((teal.render(size), teal.caption(rng)))
        if twins:
            items.append((render(teal.scene, size), caption(teal.scene, rng)))
    for _ in range(plain):
        scene = sample_base_scene(rng, "train")
        items.append((render(scene, size), caption(scene, rng)))
    for i, (image, text) in enumerate(items):
        Image.fromarray(image).save(out / f"{i:05d}.png")
        (out / f"{i:05d}.txt").write_text(text + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write a folder of teal shape scenes + captions.")
    ap.add_argument("out", help="folder to write (created)")
    ap.add_argument("--n", type=int, default=400, help="teal scenes")
    ap.add_argument("--plain", type=int, default=2400, help="ordinary scenes mixed in")
    ap.add_argument(
        "--no-twins", action="store_true", help="leave out each teal scene's ordinary twin"
    )
    ap.add_argument("--seed", type=int, default=TRAIN_SEED)
    args = ap.parse_args(argv)
    folder = write_folder(args.out, args.n, args.plain, args.seed, twins=not args.no_twins)
    twins = 0 if args.no_twins else args.n
    print(f"{args.n} teal scenes, {twins} twins, {args.plain} ordinary scenes in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
