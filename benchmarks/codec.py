"""``python -m benchmarks.codec``: the mel codec's round trip on real renders of the sound world.

Each clip goes wave -> log-mel -> (InverseMelScale + Griffin-Lim) -> wave. Printed: the log-mel
error after re-encoding (dB), the world's scorer on the round-tripped clips beside the
originals, and decode speed. What a model generates can only be as good as this.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from conditioning.mel import MelCodec
from training.world.score_sounds import score, summarise
from training.world.sounds import render, sample_scene


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.codec", description=__doc__)
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--iters", type=int, default=32, help="Griffin-Lim iterations")
    ap.add_argument("--n-mels", type=int, default=80, help="mel bands (the bundled models: 80)")
    ap.add_argument("--f-min", type=float, default=20.0, help="lowest band edge, Hz")
    ap.add_argument("--f-max", type=float, default=8000.0, help="highest band edge, Hz")
    ap.add_argument("--n-fft", type=int, default=1024, help="STFT size")
    args = ap.parse_args(argv)
    codec = MelCodec(
        n_mels=args.n_mels,
        f_min=args.f_min,
        f_max=args.f_max,
        n_fft=args.n_fft,
        griffin_lim_iters=args.iters,
    )
    notes = {"C3": 130.81, "C4": 261.63, "A4": 440.0, "B5": 987.77}  # the world's range
    rng = np.random.default_rng(7)
    scenes = [sample_scene(rng, "heldout" if i % 2 else "train") for i in range(args.clips)]
    errors, real, back, seconds, decode_s = [], [], [], 0.0, 0.0
    for scene in scenes:
        wave = torch.from_numpy(render(scene))[None]
        frames = codec.encode(wave)
        tic = time.perf_counter()
        out = codec.decode(frames, wave.shape[-1])
        decode_s += time.perf_counter() - tic
        seconds += scene.duration
        db = 10 / np.log(10) * codec.std  # normalised units -> dB of power
        errors.append(((codec.encode(out) - frames).abs().mean() * db).item())
        real.append(score(wave[0].numpy(), scene))
        back.append(score(out[0].numpy(), scene))
    print(
        f"mel codec {codec.n_mels} mels, hop {codec.hop}, Griffin-Lim {args.iters} iterations,"
        f" {args.clips} clips ({seconds:.0f} s of audio)\n"
    )
    widths = ", ".join(f"{n} {codec.semitones_per_band(f):.2f}" for n, f in notes.items())
    print(f"frequency resolution (semitones per band; the scorer wants 1): {widths}")
    print(
        f"log-mel error after the round trip: {np.mean(errors):.2f} dB mean "
        f"(worst clip {np.max(errors):.2f} dB)"
    )
    print(f"decode speed: {seconds / decode_s:.1f} s of audio per second (CPU)\n")
    a, b = summarise(real), summarise(back)
    print("| scorer key | real renders % | after the round trip % |\n|---|---|---|")
    for k in a:
        print(f"| {k} | {a[k]:.1f} | {b.get(k, float('nan')):.1f} |")


if __name__ == "__main__":
    main()
