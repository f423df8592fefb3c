"""The word-level encoder, the prompt rewriter, and the text distillation trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conditioning.encoders import load_text_encoder
from conditioning.rewriter import PromptRewriter
from conditioning.word_encoder import NULL, UNK, WordTextEncoder
from training.recipe import Recipe
from training.rewriter import build, exact_match, train_rewriter
from training.world import digits, shapes


@pytest.fixture(scope="module")
def words() -> WordTextEncoder:
    torch.manual_seed(0)
    return WordTextEncoder(vocab=shapes.text_vocabulary(), width=32, depth=1, heads=2).eval()


def test_synonyms_typos_and_unknown_words(words):
    assert words.ids("a large red circle") == words.ids("A HUGE scarlet disk!")
    assert words.ids("a big crimson disc") == words.ids("a large red circle")  # held-out words
    assert words.ids("a larg red cirle") == words.ids("a large red circle")  # typos
    # two neighbouring letters swapped (difflib's ratio alone scores "tniy" 0.75, too far)
    assert words.ids("a tniy red cirlce on the elft") == words.ids("a tiny red circle on the left")
    assert words.ids("a red zebra")[-1] == UNK and words.ids("") == [NULL]
    # phrases are one token: "to the left of" is the relation, not four words
    assert len(words.ids("to the left of")) == 1
    # the article's form says nothing of the next word: "an" reads as "a"
    assert words.ids("an emerald disc") == words.ids("a green circle")


def test_word_encoder_save_load_same_output(words, tmp_path):
    words.save_pretrained(tmp_path / "te")
    loaded = load_text_encoder(tmp_path / "te")
    assert isinstance(loaded, WordTextEncoder) and loaded.vocab == words.vocab
    with torch.no_grad():
        a, b = words.encode(["a red circle", ""]), loaded.encode(["a red circle", ""])
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.pooled, b.pooled)


def _digits_recipe(**kw) -> Recipe:
    base = dict(
        name="digits-rw",
        objective="rewriter",
        init="digits-t2i",
        data="digits",
        text_encoder={"width": 32, "depth": 2, "heads": 2, "out_len": 4},
        batch_size=64,
        steps=250,
        lr=3e-3,
        warmup=20,
        checkpoint_every=100,
    )
    return Recipe(**{**base, **kw})


@pytest.fixture(scope="module")
def digits_rewriter(tmp_path_factory):
    out = tmp_path_factory.mktemp("rw")
    folder = train_rewriter(_digits_recipe(), out)
    return out, folder


def test_rewriter_learns_the_grammar_and_keeps_what_it_cannot_read(digits_rewriter):
    _, folder = digits_rewriter
    model = PromptRewriter.from_pretrained(folder / "rewriter").eval()
    scores = exact_match(model, _digits_recipe(), n=200)
    assert scores["train"] >= 95 and scores["heldout"] >= 90, scores
    assert model.rewrite(["the number 7", "", "a teal seven"]) == [
        "a handwritten seven",
        "",  # the unconditional prompt stays unconditional
        "a teal seven",  # "teal" is no word of this world: passed on as typed
    ]


def test_rewriter_resume_equals_uninterrupted(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train_rewriter(_digits_recipe(steps=40, checkpoint_every=20), a)
    train_rewriter(_digits_recipe(steps=40, checkpoint_every=20, stop_at=20), b)  # "killed"
    train_rewriter(_digits_recipe(steps=40, checkpoint_every=20), b, resume=True)
    wa = load_file(a / "rewriter-checkpoint" / "model.safetensors")
    wb = load_file(b / "rewriter-checkpoint" / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_longer_run_continues_a_trained_rewriter(digits_rewriter, tmp_path):
    _, folder = digits_rewriter
    from training.rewriter import start_from

    model = build(_digits_recipe())
    start_from(model, str(folder))
    trained = PromptRewriter.from_pretrained(folder / "rewriter")
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), trained.state_dict().values(), strict=True)
    )
    wider = build(_digits_recipe(text_encoder={"width": 48, "depth": 2, "heads": 2, "out_len": 4}))
    with pytest.raises(ValueError, match="another vocabulary or shape"):
        start_from(wider, str(folder))
    with pytest.raises(ValueError, match="has no rewriter"):
        start_from(model, "sounds-t2a")  # a model folder without one
    # Training on from it: step 0 of the new run is the trained rewriter, not a fresh one.
    out = train_rewriter(
        _digits_recipe(steps=1, lr=1e-9, warmup=1, init_rewriter=str(folder)), tmp_path / "long"
    )
    again = PromptRewriter.from_pretrained(out / "rewriter").eval()
    assert again.rewrite(["the number 7"]) == ["a handwritten seven"]


def test_rewriter_vocabulary_covers_heldout_forms_as_known():
    model = build(_digits_recipe())
    assert model.knows("can you draw a 7") and not model.knows("a teal 7")
    assert model.words.vocab["pen"] == UNK  # a held-out form's word: known, never trained


def test_pipeline_reads_through_the_rewriter(digits_rewriter):
    from pipelines.registry import load_pipeline

    _, folder = digits_rewriter
    plain, rewritten = load_pipeline("digits-t2i"), load_pipeline(str(folder))
    plain.rewriter = None  # the model alone, as it was before it had a rewriter
    canonical = digits.caption(7)
    a = plain(canonical, seed=3)[0]
    b = rewritten(canonical, seed=3)[0]
    assert np.array_equal(a.media, b.media)  # its own captions: exactly the model as it was
    c = rewritten("draw a 7 please", seed=3)[0]
    assert c.settings["revised_prompt"] == canonical and np.array_equal(c.media, a.media)


def test_position_jitter_shifts_rows_inside_the_window():
    from training.rewriter import offsets, with_unknown

    model = build(_digits_recipe())
    rows = [model.words.ids(p, model.max_length) for p in ("the number 7", "a handwritten 3")]
    rng = np.random.default_rng(0)
    longer = with_unknown(rows * 50, rng, most=8)
    assert max(len(r) - len(rows[i % 2]) for i, r in enumerate(longer)) > 3  # up to 8 inserted
    shift = offsets(longer, model.max_length, rng)
    assert all(
        0 <= s <= model.max_length - len(r) for s, r in zip(shift.tolist(), longer, strict=True)
    )
    assert len(set(shift.tolist())) > 5
    ids, mask = model.words.pad(rows, model.device)
    zero = torch.zeros(len(rows), dtype=torch.long)
    assert torch.equal(model(ids, mask), model(ids, mask, zero))  # rewriting: no shift
    assert not torch.allclose(model(ids, mask), model(ids, mask, zero + 3))
    with pytest.raises(ValueError, match="position_jitter"):
        _digits_recipe(rewriter={"jitter": True})


def test_distillation_trains_the_student_and_resumes_exactly(tmp_path):
    from training.distill import distill

    recipe = Recipe.load(
        "shapes-t2i-words",
        steps=4,
        batch_size=4,
        checkpoint_every=2,
        data_size=64,
        warmup=1,
        text_encoder={"kind": "word", "width": 128, "depth": 1, "heads": 2, "max_length": 48},
    )
    a = distill(recipe, tmp_path / "a")
    distill(Recipe.load("shapes-t2i-words", **{**recipe.__dict__, "stop_at": 2}), tmp_path / "b")
    b = distill(recipe, tmp_path / "b", resume=True)
    wa, wb = (load_file(f / "text_encoder" / "diffusion_pytorch_model.safetensors") for f in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ta = load_file(a / "transformer" / "diffusion_pytorch_model.safetensors")
    from pipelines.spec import resolve_model

    t0 = load_file(
        resolve_model("shapes-t2i") / "transformer" / "diffusion_pytorch_model.safetensors"
    )
    assert any(not torch.equal(ta[k], t0[k]) for k in ta if "text" in k)  # its text side trained
    assert len((tmp_path / "a" / "loss.jsonl").read_text().splitlines()) == 4


def _fixed_rewriter(templates, logits: torch.Tensor) -> PromptRewriter:
    """A rewriter whose every forward returns ``logits`` (Q, V): decoding alone under test."""
    model = PromptRewriter(
        vocab=shapes.text_vocabulary(),
        width=16,
        depth=1,
        heads=2,
        out_words=["<pad>", "a", "red", "circle", "blue"],
        out_len=3,
        templates=templates,
    ).eval()
    model.forward = lambda ids, mask: logits.expand(len(ids), -1, -1)  # type: ignore[method-assign]
    return model


def test_constrained_decoding_picks_the_best_caption_a_template_allows(tmp_path):
    # position 1 prefers <pad> (a caption that stops half way) over "red", slightly
    logp = torch.tensor(
        [
            [-9.0, -0.1, -9.0, -9.0, -9.0],
            [-1.0, -9.0, -1.2, -9.0, -3.0],
            [-9.0, -9.0, -9.0, -0.2, -9.0],
        ]
    )
    free = _fixed_rewriter(None, logp)
    assert free.decode(["a red circle"]).tolist() == [[1, 0, 3]]  # "a <pad> circle"
    # template 0: "a {red|blue} circle"; template 1: "a blue" (then <pad>)
    templates = [[[1], [2, 4], [3]], [[1], [4]]]
    model = _fixed_rewriter(templates, logp)
    # sums: template 0 = -0.1 - 1.2 - 0.2 = -1.5; template 1 = -0.1 - 3.0 - 9.0 = -12.1
    assert model.decode(["a red circle", "anything"]).tolist() == [[1, 2, 3]] * 2
    assert model.rewrite(["a red circle"]) == ["a red circle"]
    # template 1 wins once the third position's <pad> is likely and "circle" is not
    logp2 = logp.clone()
    logp2[2] = torch.tensor([-0.1, -9.0, -9.0, -5.0, -9.0])
    assert _fixed_rewriter(templates, logp2).decode(["x"]).tolist() == [[1, 4, 0]]
    # templates travel with the config
    model.save_pretrained(tmp_path / "rw")
    loaded = PromptRewriter.from_pretrained(tmp_path / "rw")
    assert torch.equal(loaded.allowed, model.allowed) and loaded.allowed.shape == (2, 3, 5)
    with pytest.raises(ValueError, match="out_len"):
        _fixed_rewriter([[[1], [2], [3], [1]]], logp)
    with pytest.raises(ValueError, match="word ids"):
        _fixed_rewriter([[[1], [7]]], logp)


def test_decoding_adds_the_prompt_without_its_unknown_words():
    seen = []
    model = PromptRewriter(
        vocab=shapes.text_vocabulary(),
        width=16,
        depth=1,
        heads=2,
        out_words=["<pad>", "a"],
        out_len=2,
    ).eval()

    def forward(ids, mask):
        seen.append(ids[mask].tolist())
        return torch.zeros(len(ids), 2, 2)

    model.forward = forward  # type: ignore[method-assign]
    model.decode(["a red zebra circle"])
    typed, known = seen
    assert UNK in typed and UNK not in known and len(known) == len(typed) - 1
