"""Does a flow model use its text? Velocity error with the true caption, an empty one and
another item's caption, split by flow time t (issue 19: "the text is not used where it
matters").

On training-split clips of the model's own world, for each t of a grid the same noise and
clean tokens give x_t; the model's velocity there is compared with the target v = data -
noise under three captions. A model that reads its prompt has a clearly lower error with the
true caption than with an empty or a wrong one, most of all near noise (small t), where
count, order and pitch are decided; equal columns mean the text is ignored at that t.

    python -m training.text_probe sounds-t2a [--items 64]
"""

from __future__ import annotations

import argparse

import torch

from dit.flow import interpolate, target_velocity
from dit.tokens import text_positions
from pipelines.audio import TextToAudioPipeline

TIMES = (0.02, 0.1, 0.25, 0.5, 0.75, 0.9)


def sound_items(pipe: TextToAudioPipeline, n: int, phrasing: str = "train", seed: int = 5):
    """(tokens (B, N, D), captions) of training-split clips of one token count (the most
    common among ``4 n`` drawn, at most ``n``), in the model's codec, captions in
    ``phrasing`` ("canonical" for a model trained on canonical captions)."""
    from training.data import SoundsSource

    source = SoundsSource(4 * n, seed, pipe.spec.seconds, pipe.codec, phrasing=phrasing)
    bucket = max(source.buckets(), key=len)[:n]
    tokens, captions = zip(*(source.item(int(i)) for i in bucket), strict=True)
    return torch.stack(tokens), list(captions)


@torch.no_grad()
def probe(
    pipe: TextToAudioPipeline, data: torch.Tensor, captions: list[str], times=TIMES, seed: int = 0
) -> list[dict[str, float]]:
    """Per t: mean squared velocity error with the true, empty and rolled captions."""
    model, encoder = pipe.transformer, pipe.text_encoder
    b, n, _ = data.shape
    pos = {"audio": pipe.streams["audio"].layout_of(n).positions}
    rows = []
    texts = {"true": captions, "empty": [""] * b, "other": captions[1:] + captions[:1]}
    embs = {k: encoder.encode(v) for k, v in texts.items()}
    g = torch.Generator().manual_seed(seed)
    for t_value in times:
        noise = torch.randn(data.shape, generator=g)
        t = torch.full((b,), t_value)
        x_t = interpolate(noise, data, t)
        row = {"t": t_value}
        for name, emb in embs.items():
            p = {"text": text_positions(emb.tokens.shape[1], emb.tokens.device), **pos}
            v = model(
                {"text": emb.tokens, "audio": x_t},
                p,
                t,
                pooled=emb.pooled,
                masks={"text": emb.mask},
            )["audio"]
            row[name] = float((v - target_velocity(noise, data)).pow(2).mean())
        rows.append(row)
    return rows


def table(rows: list[dict[str, float]]) -> str:
    lines = [
        "| t | true caption | empty caption | another item's caption | gain of the text |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        gain = 1 - r["true"] / r["empty"]
        lines.append(
            f"| {r['t']:.2f} | {r['true']:.4f} | {r['empty']:.4f} | {r['other']:.4f} "
            f"| {100 * gain:.1f}% |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="an audio flow model's name or folder")
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument(
        "--phrasing",
        choices=("train", "canonical"),
        default="train",
        help="the captions' phrasing: the one the model was trained on",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    pipe = TextToAudioPipeline.from_pretrained(args.model)
    if pipe.spec.objective != "flow":
        raise SystemExit(f"{args.model}: a {pipe.spec.objective} model; the probe is for flow")
    data, captions = sound_items(pipe, args.items, args.phrasing)
    print(f"{args.model}: {len(captions)} training-split clips of {data.shape[1]} tokens")
    print(table(probe(pipe, data, captions)))


if __name__ == "__main__":
    main()
