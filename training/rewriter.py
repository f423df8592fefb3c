"""Train a world's prompt rewriter (``conditioning/rewriter.py``) and attach it to a model.

Recipe objective "rewriter": ``data`` names the world, ``init`` the model folder the rewriter
serves. Pairs are drawn fresh every step from the world's grammar: a training phrasing of a
training-split scene in, its canonical caption out (cross-entropy per output word). No media
and no transformer: a run takes minutes on two cores. The export is the ``init`` folder with
``rewriter/`` added; ``python -m training.rewriter MODEL`` prints its exact-match table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from conditioning.rewriter import PromptRewriter
from conditioning.word_encoder import UNK

from .distill import load_checkpoint, save_checkpoint
from .recipe import Recipe
from .world.grammar import form_words

CHECKPOINT = "rewriter-checkpoint"


def world(name: str) -> tuple[ModuleType, callable]:
    """The world module of ``name`` and its truth sampler (rng, split) -> scene / label."""
    from .world import audiovideo, digits, motion, shapes, sounds

    worlds = {
        "shapes": (shapes, shapes.sample_scene),
        "digits": (digits, lambda rng, split: int(rng.integers(10))),
        "sounds": (sounds, sounds.sample_scene),
        "motion": (motion, lambda rng, split: motion.sample_clip(rng, split)),
        "bounce": (audiovideo, lambda rng, split: audiovideo.sample_scene(rng, split)),
    }
    if name not in worlds:
        raise ValueError(f"no caption grammar for data={name!r}; known: {sorted(worlds)}")
    return worlds[name]


def target(module: ModuleType, truth) -> str:
    """The caption a prompt should become: the canonical caption of the truth's normal form
    (a world whose scenes have two equal descriptions names one: shapes' ``normal_form``)."""
    normal = getattr(module, "normal_form", None)
    return module.caption(normal(truth) if normal else truth)


def build(recipe: Recipe) -> PromptRewriter:
    module, sample = world(recipe.data)
    vocab = module.text_vocabulary()
    known = sorted(
        {w for forms in module.FORMS for f in forms.heldout for w in form_words(f)} - set(vocab)
    )
    rng = np.random.default_rng(0)
    out = {"<pad>": 0}
    seen: dict[int, dict[int, set[int]]] = {}  # caption length -> position -> word ids
    places: dict[int, set[tuple[str, ...]]] = {}  # caption length -> objects' places seen
    object_places = getattr(module, "object_places", None)
    for _ in range(5000):
        truth = sample(rng, "train")
        words = target(module, truth).split(" ")
        at = seen.setdefault(len(words), {})
        for i, w in enumerate(words):
            at.setdefault(i, set()).add(out.setdefault(w, len(out)))
        if object_places:
            places.setdefault(len(words), set()).add(object_places(truth))
    # One template per caption length: the words seen at each of its positions.
    templates = [[sorted(seen[n][i]) for i in range(n)] for n in sorted(seen)]
    # A form that always puts its objects in the same places implies them (binding reads them).
    implied = [
        [[out[w]] for w in next(iter(places[n]))]
        if len(places.get(n, ())) == 1 and all(w in out for w in next(iter(places[n])))
        else []
        for n in sorted(seen)
    ]
    config = {k: v for k, v in recipe.text_encoder.items() if k != "kind"}
    return PromptRewriter(
        vocab=vocab,
        out_words=list(out),
        known=known,
        templates=templates,
        attributes=attributes(templates, list(out), module.LEXICON),
        implied=implied,
        **config,
    )


def attributes(templates: list[list[list[int]]], out_words: list[str], lexicon) -> list[list[int]]:
    """The attributes a rewrite keeps (``conditioning/constrained.py``): each distinct set of
    output words a template position chooses among, when every one is a concept of the world's
    lexicon (sizes, colours, shapes, places), not a function word ("at / on / in")."""
    out: list[list[int]] = []
    for template in templates:
        for words in template:
            concepts = len(words) > 1 and all(out_words[w] in lexicon.concepts for w in words)
            if concepts and sorted(words) not in out:
                out.append(sorted(words))
    return out


def start_from(model: PromptRewriter, folder: str) -> None:
    """Load the weights of ``folder``'s rewriter/ into ``model`` (a longer run continuing a
    trained rewriter); its vocabularies must be the ones this recipe builds."""
    from pipelines.spec import resolve_model

    path = resolve_model(folder) / "rewriter"
    if not path.is_dir():
        raise ValueError(f"recipe init_rewriter={folder!r}: {path} has no rewriter/ to continue")
    old = PromptRewriter.from_pretrained(path)
    # decoding's constraints, not the weights': a new run may add them
    same = ("templates", "attributes", "implied")
    if any(
        old.config.get(k) != v
        for k, v in model.config.items()
        if not k.startswith("_") and k not in same
    ):
        raise ValueError(
            f"recipe init_rewriter={folder!r}: its rewriter has another vocabulary "
            "or shape than this recipe's; train it from scratch (init_rewriter "
            '"")'
        )
    model.load_state_dict(old.state_dict())


def pairs(
    recipe: Recipe,
    rewriter: PromptRewriter,
    step: int,
    phrasing: str = "train",
    split: str = "train",
    n: int | None = None,
) -> tuple[list[str], torch.Tensor]:
    """(prompts, targets (B, out_len) of output word ids, 0 after the end) of one step."""
    module, sample = world(recipe.data)
    rng = np.random.default_rng([recipe.seed, step, 11])
    index = {w: i for i, w in enumerate(rewriter.out_words)}
    prompts, targets = [], torch.zeros(n or recipe.batch_size, rewriter.out_len, dtype=torch.long)
    for b in range(len(targets)):
        truth = sample(rng, split)
        prompts.append(module.caption(truth, rng, phrasing))
        words = target(module, truth).split(" ")[: rewriter.out_len]
        targets[b, : len(words)] = torch.tensor([index.get(w, 0) for w in words])
    return prompts, targets


UNK_PROMPTS = 0.5  # share of prompts given unknown words: people write words a world lacks
UNK_WORDS = 0.15  # in those, each word becomes <unk> this often, and 1-3 are inserted


def with_unknown(
    rows: list[list[int]], rng: np.random.Generator, most: int = 3, run: int = 1
) -> list[list[int]]:
    """Token rows with ``<unk>`` put in and put over words (1 to ``most`` runs of 1 to ``run``
    inserted), so that the rewriter learns to read past words it does not know (the held-out
    forms are full of them, often several in a row: "in the upper part you can see" reads
    "in the top <unk> <unk> <unk> <unk>", and they are longer than the training forms)."""
    out = []
    for r in rows:
        if rng.random() < UNK_PROMPTS:
            r = [UNK if rng.random() < UNK_WORDS else t for t in r]
            for _ in range(int(rng.integers(1, most + 1))):
                k = int(rng.integers(len(r) + 1))
                r = [*r[:k], *[UNK] * int(rng.integers(1, run + 1)), *r[k:]]
        out.append(r)
    return out


def offsets(rows: list[list[int]], max_length: int, rng: np.random.Generator) -> torch.Tensor:
    """(B,) random first positions, each row still inside ``max_length``: every position
    embedding then learns every place in a prompt, and a held-out form longer than any
    training form finds its late words at trained positions (randomised positional encodings,
    Ruoss et al. 2023)."""
    room = [max(0, max_length - len(r)) for r in rows]
    return torch.tensor([int(rng.integers(k + 1)) for k in room])


def train_rewriter(
    recipe: Recipe,
    out_dir: str | os.PathLike,
    resume: bool = False,
    max_minutes: float | None = None,
) -> Path:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
    torch.manual_seed(recipe.seed)
    model = build(recipe).train()
    if recipe.init_rewriter and not resume:
        start_from(model, recipe.init_rewriter)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    step = 0
    ckpt = out / CHECKPOINT
    if resume:
        step = load_checkpoint(ckpt, {"model": model}, opt)
    log = (out / "loss.jsonl").open("a")
    end = min(recipe.steps, recipe.stop_at) if recipe.stop_at > 0 else recipe.steps
    while step < end:
        lr = recipe.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        prompts, targets = pairs(recipe, model, step)
        rows = [model.words.ids(p, model.max_length) for p in prompts]
        aug = np.random.default_rng([recipe.seed, step, 12])
        rows = with_unknown(
            rows,
            aug,
            int(recipe.rewriter.get("unk_insert", 3)),
            int(recipe.rewriter.get("unk_run", 1)),
        )
        rows = [r[: model.max_length] for r in rows]  # insertions may pass the longest prompt
        shift = (
            offsets(rows, model.max_length, aug) if recipe.rewriter.get("position_jitter") else None
        )
        logits = model(*model.words.pad(rows, model.device), shift)  # (B, Q, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        log.write(json.dumps({"step": step, "loss": loss.item(), "lr": lr}) + "\n")
        if step % 50 == 0:
            log.flush()
            print(f"step {step}/{recipe.steps} loss {loss.item():.4f}", flush=True)
        out_of_time = deadline is not None and time.monotonic() > deadline
        if step % recipe.checkpoint_every == 0 or step == end or out_of_time:
            save_checkpoint(ckpt, step, {"model": model}, opt)
        if out_of_time:
            break
    log.close()
    folder = out / "model"
    export(model.eval(), recipe, folder)
    return folder


def export(model: PromptRewriter, recipe: Recipe, folder: Path) -> None:
    """The ``init`` model folder with this rewriter as ``rewriter/`` (atomically)."""
    from pipelines.spec import INDEX, resolve_model

    tmp = folder.with_name(f".tmp-{folder.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(resolve_model(recipe.init), tmp, ignore=shutil.ignore_patterns("rewriter"))
    model.save_pretrained(tmp / "rewriter")
    index = json.loads((tmp / INDEX).read_text())
    index["rewriter"] = ["conditioning", "PromptRewriter"]
    (tmp / INDEX).write_text(json.dumps(index, indent=2))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def exact_match(model: PromptRewriter, recipe: Recipe, n: int = 1000) -> dict[str, float]:
    """Percent of prompts rewritten to exactly their canonical caption, per phrasing, on
    held-out scenes (for worlds with a held-out split of scenes)."""
    out = {}
    for phrasing in ("canonical", "train", "heldout"):
        prompts, targets = pairs(recipe, model, 10**9, phrasing, "heldout", n)  # no training step
        got = model.rewrite(prompts)
        want = [" ".join(model.out_words[w] for w in row if w) for row in targets.tolist()]
        out[phrasing] = 100 * float(np.mean([g == w for g, w in zip(got, want, strict=True)]))
        words = sum(p != g for p, g in zip(prompts, got, strict=True))
        out[f"{phrasing} rewritten"] = 100 * words / n
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.rewriter", description=__doc__)
    ap.add_argument("model", help="a model folder (or bundled name) holding rewriter/")
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args(argv)
    from pipelines.spec import ModelSpec, resolve_model

    folder = resolve_model(args.model)
    if not (folder / "rewriter").is_dir():
        print(f"{folder} has no rewriter/", file=sys.stderr)
        return 2
    spec = ModelSpec.read(folder)[1]
    model = PromptRewriter.from_pretrained(folder / "rewriter").eval()
    recipe = Recipe(
        name=spec.name,
        data=spec.extra["data"],
        objective="rewriter",
        init=str(folder),
        modality=spec.modality,
    )
    scores = exact_match(model, recipe, args.n)
    print("| phrasing | exact canonical caption % | changed by the rewriter % |\n|---|---|---|")
    for p in ("canonical", "train", "heldout"):
        print(f"| {p} | {scores[p]:.1f} | {scores[p + ' rewritten']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
