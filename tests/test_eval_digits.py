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
