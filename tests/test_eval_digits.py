import numpy as np

from training.eval_digits import frechet_distance, to_features_grid, train_judge


def test_judge_is_accurate_on_real_digits_and_the_distance_discriminates():
    judge = train_judge()
    assert judge.heldout_accuracy >= 0.95
    floor = frechet_distance(judge.real_b, judge.real_a)
    rng = np.random.default_rng(0)
    noise = judge.features(rng.uniform(0, 16, size=(500, 64)))
    assert frechet_distance(noise, judge.real_a) > 10 * floor
    assert frechet_distance(judge.real_a, judge.real_a) < 1e-6


def test_rgb_renders_map_back_to_the_digit_scale():
    from sklearn.datasets import load_digits

    d = load_digits()
    grey = np.kron(d.images[:20], np.ones((4, 4))) / 16 * 255  # 8x8 -> 32x32, 0..255
    rgb = np.repeat(grey[..., None], 3, -1).round().astype(np.uint8)
    back = to_features_grid(rgb)
    assert np.abs(back - d.images[:20].reshape(20, -1)).max() < 0.1
    judge = train_judge()
    assert judge.accuracy(back, d.target[:20]) >= 0.95


def test_real_scans_at_training_size_are_near_the_reference():
    """The round trip a trained model's output takes (upsample, uint8, pool) costs the real
    scans themselves almost nothing against a reference that took the same trip."""
    from training.eval_digits import real_as_trained

    judge = train_judge(size=16)
    floor = frechet_distance(judge.real_b, judge.real_a)
    x = real_as_trained(16)
    assert frechet_distance(judge.features(x[: len(x) // 2]), judge.real_a) < 2 * floor
    raw = train_judge()  # against the raw scans the same images read far away: the blur
    assert frechet_distance(judge.features(x), raw.real_a) > 2 * floor
