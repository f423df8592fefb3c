"""``python -m training.gallery MODEL OUT.png``: the README's gallery, one command.

Shapes models: prompts from the held-out evaluation set (unseen attribute combinations
included); digits models: "a handwritten zero" ... "nine". Seed i for prompt i, the model's
default steps and guidance, each image upscaled 4x (nearest) with its prompt underneath.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipelines.outputs import atomic_write_bytes, write_png
from pipelines.registry import load_pipeline

from .eval_shapes import heldout_scenes
from .world.digits import caption as digit_caption


def _tile(img: Image.Image, prompt: str) -> np.ndarray:
    """The image with its prompt underneath, wrapped at about 26 characters."""
    tile = Image.new("RGB", (max(img.width, 160), img.height + 40), "white")
    tile.paste(img, ((tile.width - img.width) // 2, 0))
    words, lines = prompt.split(), [""]
    for w in words:
        lines[-1] = f"{lines[-1]} {w}".strip() if len(lines[-1]) + len(w) < 26 else lines[-1]
        if lines[-1] and not lines[-1].endswith(w):
            lines.append(w)
    ImageDraw.Draw(tile).text((4, img.height + 2), "\n".join(lines[:3]), fill="black")
    return np.asarray(tile)


def sound_gallery(model: str, out: str, n: int = 4) -> np.ndarray:
    """Held-out sound prompts: a WAV each beside ``out`` (``<stem>-<i>.wav``) and their
    spectrograms (of the sound as heard, re-encoded) as one strip."""
    import torch

    from pipelines.audio import spectrogram_image

    from .eval_sounds import heldout_sound_scenes

    pipe = load_pipeline(model)
    scenes, prompts = heldout_sound_scenes(n, pipe.spec.seconds, seed=7)
    tiles = []
    for i, (scene, prompt) in enumerate(zip(scenes, prompts, strict=True)):
        (o,) = pipe(prompt, seed=i, duration=scene.duration)
        pipe.save([o], Path(out).parent)  # named <seed>-00.wav: rename to the gallery's name
        (Path(out).parent / o.filename()).replace(Path(out).with_name(f"{Path(out).stem}-{i}.wav"))
        frames = pipe.codec.encode(torch.from_numpy(o.media)[None])[0]
        tiles.append(_tile(Image.fromarray(spectrogram_image(frames, pipe.codec.silence)), prompt))
    height = max(t.shape[0] for t in tiles)
    tiles = [
        np.pad(t, ((0, height - t.shape[0]), (0, 8), (0, 0)), constant_values=255) for t in tiles
    ]
    return np.concatenate(tiles, axis=1)


def video_gallery(model: str, out: str, n: int = 6, scale: int = 4) -> np.ndarray:
    """Held-out motion prompts (or audio+video scenes): every frame of each clip in a row with
    its prompt (the PNG), an animated GIF of all clips beside ``out`` (``<stem>.gif``), and for
    audio+video models an MP4 with sound per clip (``<stem>-<i>.mp4``)."""
    pipe = load_pipeline(model)
    if pipe.spec.modality == "audio+video":
        from .eval_audiovideo import eval_scenes

        _, prompts = eval_scenes(n, pipe.spec.seconds, seed=7)
    else:
        from .eval_motion import eval_clips

        _, prompts = eval_clips(n, "heldout", pipe.spec.seconds, seed=7)
    rows, clips = [], []
    for i, prompt in enumerate(prompts):
        (o,) = pipe(prompt, seed=i)
        frames = getattr(o.media, "frames", o.media)  # (F, H, W, 3)
        big = frames.repeat(scale, axis=1).repeat(scale, axis=2)
        clips.append(big)
        strip = Image.fromarray(np.concatenate(list(big), axis=1))
        rows.append(_tile(strip, prompt))
        if pipe.spec.modality == "audio+video":
            atomic_write_bytes(
                Path(out).with_name(f"{Path(out).stem}-{i}.mp4"),
                pipe.encode_file(o.media, o.settings),
            )
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    # the GIF: all clips side by side, looping at the model's frame rate
    pad = [np.pad(c, ((0, 0), (0, 0), (0, 4), (0, 0)), constant_values=255) for c in clips]
    movie = np.concatenate(pad, axis=2)  # (F, H, n * (W + 4), 3)
    images = [Image.fromarray(f) for f in movie]
    images[0].save(
        Path(out).with_suffix(".gif"),
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / pipe.spec.fps),
        loop=0,
    )
    return np.concatenate(rows, axis=0)


def gallery(model: str, n: int = 8, scale: int = 4, phrasing: str = "heldout") -> np.ndarray:
    """A strip of ``n`` images for held-out prompts in ``phrasing`` (free phrasing by default:
    forms and synonyms the model never saw in training)."""
    pipe = load_pipeline(model)
    if pipe.spec.extra.get("data") == "digits":
        rng = np.random.default_rng(7)
        prompts = [digit_caption(d % 10, rng, phrasing) for d in range(n)]
    else:
        _, prompts = heldout_scenes(n, seed=7, phrasing=phrasing)
    tiles = []
    for i, prompt in enumerate(prompts):
        img = Image.fromarray(pipe(prompt, seed=i)[0].media)
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        tiles.append(_tile(img, prompt))
    return np.concatenate(tiles, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m training.gallery", description=__doc__)
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument(
        "--phrasing",
        default="heldout",
        choices=("canonical", "train", "heldout"),
        help="image models: the caption phrasing of the prompts",
    )
    args = ap.parse_args()
    from pipelines.spec import ModelSpec, resolve_model

    modality = ModelSpec.read(resolve_model(args.model))[1].modality
    if modality == "audio":
        strip = sound_gallery(args.model, args.out, min(args.n, 4))
    elif modality in ("video", "audio+video"):
        strip = video_gallery(args.model, args.out, min(args.n, 6))
    else:
        strip = gallery(args.model, args.n, phrasing=args.phrasing)
    write_png(args.out, strip, {"model": args.model, "kind": "gallery"})
    print(args.out)


if __name__ == "__main__":
    main()
