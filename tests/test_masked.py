import itertools

import torch

from dit.masked import decode, mask_ratio, masked_loss, random_mask, span_mask

K, MASK = 7, 7


def counting_fn(seed=0):
    g = torch.Generator().manual_seed(seed)
    calls, history = [], []

    def fn(tokens, t):
        calls.append(t.clone())
        history.append(tokens.clone())
        return torch.randn(*tokens.shape, K, generator=g)

    return fn, calls, history


def check_decode(steps, n, span, schedule="cosine"):
    fn, calls, history = counting_fn()
    start = torch.full((3, n), MASK)
    out = decode(
        fn,
        start,
        MASK,
        steps,
        schedule=schedule,
        span=span,
        generator=torch.Generator().manual_seed(1),
    )
    assert len(calls) == steps
    assert (out != MASK).all() and (out < K).all()
    history.append(out)
    for before, after in itertools.pairwise(history):
        committed = before != MASK
        assert torch.equal(after[committed], before[committed])  # never changes a commit
        assert ((after != MASK).sum(1) >= committed.sum(1)).all()
    return history


def test_decoder_unmasks_everything_in_exactly_steps_calls():
    for steps, n, span in [(1, 16, 1), (4, 16, 1), (8, 37, 1), (12, 37, 3), (6, 10, 4)]:
        check_decode(steps, n, span)
    check_decode(5, 20, 1, schedule="linear")


def test_spans_are_committed_whole():
    history = check_decode(5, 24, 4)
    for tokens in history:
        units = (tokens == MASK).view(3, 6, 4)
        assert (units.all(-1) | (~units).all(-1)).all()


def test_every_step_commits_at_least_one_unit_when_steps_allow():
    history = check_decode(16, 16, 1)
    masked = [(h == MASK).sum(1) for h in history]
    for a, b in itertools.pairwise(masked):
        assert (b < a).all()


def test_greedy_decode_matches_argmax_of_a_fixed_field():
    target = torch.randint(0, K, (2, 12))
    logits = torch.nn.functional.one_hot(target, K).float() * 5

    out = decode(
        lambda x, t: logits,
        torch.full((2, 12), MASK),
        MASK,
        4,
        temperature=0.0,
        choice_temperature=0.0,
    )
    assert torch.equal(out, target)


def test_training_masks():
    g = torch.Generator().manual_seed(0)
    m = random_mask(64, 50, generator=g)
    assert (m.sum(1) >= 1).all()
    s = span_mask(8, 30, 5, generator=g)
    assert (s.view(8, 6, 5).all(-1) | (~s.view(8, 6, 5)).all(-1)).all()
    u = torch.linspace(0, 1, 5)
    assert mask_ratio(u)[0] == 1 and mask_ratio(u)[-1].abs() < 1e-6


def test_masked_loss_ignores_visible_tokens():
    logits = torch.randn(2, 5, K)
    targets = torch.randint(0, K, (2, 5))
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 1] = True
    expected = torch.nn.functional.cross_entropy(logits[0, 1:2], targets[0, 1:2])
    torch.testing.assert_close(masked_loss(logits, targets, mask), expected)
