"""How well an FSQ autoencoder keeps what the worlds' scorers look for.

``python -m training.eval_autoencoder FOLDER [--items 320]`` renders held-out scenes, passes
them through the autoencoder (encode -> codes -> decode) and scores the round trip with the
world's own scorer, beside the real renders: a masked model can be no better than its
autoencoder's round trip. Images: PSNR and the shapes scores. Audio: mel error (normalised
log-mel, MSE) and the sound scores after Griffin-Lim, beside the mel codec alone.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from conditioning.fsq import FSQAutoencoder
from conditioning.mel import MelCodec
from pipelines.spec import resolve_autoencoder

from .world.summary import summarise


@torch.no_grad()
def eval_image_autoencoder(tok: FSQAutoencoder, n: int, size: int = 32) -> dict[str, float]:
    from .eval_shapes import KEYS, heldout_scenes
    from .world.score_shapes import score
    from .world.shapes import render

    scenes, _ = heldout_scenes(n)
    real = np.stack([render(s, size=size) for s in scenes])  # (B, H, W, 3) uint8
    x = torch.from_numpy(real).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.cat([tok.decode(tok.encode(c)) for c in x.split(64)]).clamp(-1, 1)
    trip = ((y + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    mse = float(((y - x) ** 2).mean())
    out = {"psnr_db": 10 * math.log10(4 / mse)}  # signal range [-1, 1]: peak-to-peak 2
    for name, images in (("real", real), ("round trip", trip)):
        scored = summarise([score(im, s) for im, s in zip(images, scenes, strict=True)])
        out |= {f"{name} {k}": v for k, v in scored.items() if k in KEYS}
    return out


@torch.no_grad()
def eval_mel_autoencoder(tok: FSQAutoencoder, n: int, codec: MelCodec, seconds: float):
    from .eval_sounds import heldout_sound_scenes
    from .world.score_sounds import score
    from .world.sounds import render

    scenes, _ = heldout_sound_scenes(n, seconds)
    out: dict[str, float] = {}
    results: dict[str, list] = {"real": [], "mel codec": [], "round trip": []}
    errors = []
    for s in scenes:
        wave = render(s)
        frames = codec.encode(torch.from_numpy(wave)[None])  # (1, F, M)
        frames = codec.from_tokens(codec.to_tokens(frames))  # padded to whole codes
        again = tok.decode(tok.encode(frames))
        errors.append(float(((again - frames) ** 2).mean()))
        samples = len(wave)
        results["real"].append(score(wave, s))
        results["mel codec"].append(score(codec.decode(frames, samples)[0].numpy(), s))
        results["round trip"].append(score(codec.decode(again, samples)[0].numpy(), s))
    out["mel_mse"] = float(np.mean(errors))
    for name, res in results.items():
        out |= {f"{name} {k}": v for k, v in summarise(res).items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.eval_autoencoder", description=__doc__)
    ap.add_argument("folder", help="an autoencoder folder (runs/X/model) or a bundled name")
    ap.add_argument("--items", type=int, default=320, help="held-out scenes to score")
    ap.add_argument("--seconds", type=float, default=3.0, help="audio: longest scene")
    args = ap.parse_args(argv)
    folder = resolve_autoencoder(args.folder)
    tok = FSQAutoencoder.from_pretrained(folder, torch_dtype=torch.float32).eval()
    if tok.kind == "image":
        result = eval_image_autoencoder(tok, args.items)
    else:
        codec = MelCodec(**tok.config.codec)  # the settings it was trained on
        result = eval_mel_autoencoder(tok, args.items, codec, args.seconds)
    print(f"{args.folder}: {tok.kind} autoencoder, {tok.codebook_size} codes, {args.items} items")
    for k, v in result.items():
        print(f"  {k:28s} {v:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
