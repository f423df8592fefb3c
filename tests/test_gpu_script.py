"""The prepared GPU call (training/gpu.py) runs end to end: train within the budget, export,
evaluate, write scores.json (here on the CPU with the tiny recipe)."""

import json

from training.gpu import run


def test_gpu_script_trains_exports_and_scores(tmp_path):
    scores = run(["tiny-test"], tmp_path, minutes=0.15, batch_scale=1, prompts=4)
    entry = json.loads((tmp_path / "scores.json").read_text())["tiny-test"]
    assert entry == scores["tiny-test"]
    assert entry["steps"] > 0
    assert (tmp_path / "runs" / "tiny-test" / "model" / "model_index.json").is_file()
    assert {"gen colour", "real colour", "prompts"} <= set(entry["scores"]) and entry["scores"][
        "prompts"
    ] == 4
