"""The web form's values -> a Request: seeds as AUTOMATIC1111 users type them."""

import re

import pytest

from app.form import form_request
from pipelines.request import RequestError

BASE = dict(
    prompt="a red circle",
    negative_prompt="",
    seed=7,
    random_seed=False,
    steps=8,
    guidance=3.0,
    solver="heun",
    width=None,
    height=None,
    num_outputs=1,
    model="shapes-t2i",
    loras="",
)


def test_seed_minus_one_is_random_and_others_are_kept():
    assert form_request({**BASE, "seed": -1.0}).seed is None
    assert form_request({**BASE, "seed": 7.0}).seed == 7
    assert form_request({**BASE, "seed": 5, "random_seed": True}).seed is None


def test_a_negative_seed_names_the_field():
    with pytest.raises(RequestError, match=r"seed=-5.*-1 for a random seed"):
        form_request({**BASE, "seed": -5})


def test_replayed_settings_of_the_wrong_kind_name_the_field():
    from app.form import replayed

    good = {"prompt": "a red circle", "seed": 3, "guidance": 2.5}
    values, loras = replayed({**good, "loras": [["teal", 0.8]], "modality": "image", "extra": 1})
    assert values == good and loras == (("teal", 0.8),)
    for bad, field in (
        ({"loras": [["teal", "0.8"]]}, "scale='0.8'"),
        ({"seed": "7"}, "seed='7'"),
        ({"seed": True}, "seed=True"),
        ({"guidance": float("nan")}, "guidance=nan"),
        ({"steps": 2.5}, "steps=2.5"),
        ({"prompt": ["x"]}, "prompt=['x']"),
        ({"loras": "teal"}, "loras='teal'"),
        ([1, 2], "not a JSON object"),
    ):
        with pytest.raises(RequestError, match=re.escape(field)):
            replayed(bad)
