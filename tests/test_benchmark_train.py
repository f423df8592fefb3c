"""The training-throughput table times the trainer's real step and counts its FLOPs."""

from benchmarks.train import HEADER, rows


def test_training_row_counts_forward_and_backward():
    (row,) = rows(["tiny-test"], set(), reps=1, warmup=0)
    cells = dict(zip(HEADER, row, strict=True))
    assert cells["recipe"] == "tiny-test" and cells["path"] == "eager"
    assert cells["batch"] == "4"
    assert float(cells["samples/s"]) > 0
    # forward + backward of a DiT is ~3x the forward alone: far above zero, and finite
    assert 0 < float(cells["GFLOP/sample"]) < 10
    assert cells["% peak"].endswith("%") and float(cells["data ms/item"]) > 0
