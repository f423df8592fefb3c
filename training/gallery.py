"""``python -m training.gallery MODEL OUT.png``: the README's gallery, one command.

Shapes models: prompts from the held-out evaluation set (unseen attribute combinations
included); digits models: "a handwritten zero" ... "nine". Seed i for prompt i, the model's
default steps and guidance, each image upscaled 4x (nearest) with its prompt underneath.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

from pipelines.image import TextToImagePipeline
from pipelines.outputs import write_png

from .data import NUMBER_WORDS
from .eval_shapes import heldout_scenes


def gallery(model: str, n: int = 8, scale: int = 4) -> np.ndarray:
    pipe = TextToImagePipeline.from_pretrained(model)
    if pipe.spec.extra.get("data") == "digits":
        prompts = [f"a handwritten {w}" for w in NUMBER_WORDS][:n]
    else:
        _, prompts = heldout_scenes(n, seed=7)
    tiles = []
    for i, prompt in enumerate(prompts):
        img = Image.fromarray(pipe(prompt, seed=i)[0].media)
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        tile = Image.new("RGB", (max(img.width, 160), img.height + 40), "white")
        tile.paste(img, ((tile.width - img.width) // 2, 0))
        words, lines = prompt.split(), [""]
        for w in words:  # wrap at about 26 characters
            lines[-1] = f"{lines[-1]} {w}".strip() if len(lines[-1]) + len(w) < 26 else lines[-1]
            if lines[-1] and not lines[-1].endswith(w):
                lines.append(w)
        ImageDraw.Draw(tile).text((4, img.height + 2), "\n".join(lines[:3]), fill="black")
        tiles.append(np.asarray(tile))
    return np.concatenate(tiles, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m training.gallery", description=__doc__)
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args()
    write_png(args.out, gallery(args.model, args.n), {"model": args.model, "kind": "gallery"})
    print(args.out)


if __name__ == "__main__":
    main()
