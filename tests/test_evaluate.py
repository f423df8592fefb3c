"""The one evaluation entry: each world's model goes to its world's evaluation, and a model of
a world without one is refused with the list (it used to be scored as shapes)."""

import pytest

from pipelines.spec import ModelSpec
from training import evaluate as ev


class Stub:
    def __init__(self, data: str, modality: str = "image") -> None:
        self.spec = ModelSpec(name=f"{data}-model", modality=modality, extra={"data": data})


def test_each_world_goes_to_its_own_evaluation(monkeypatch):
    calls = []
    for world in ev.EVALUATIONS:
        monkeypatch.setitem(
            ev.EVALUATIONS,
            world,
            lambda p, n, ph, _w=world, **s: (
                calls.append((_w, p.spec.extra["data"], n, ph, s)) or {"ok": 1}
            ),
        )
    for world in ev.EVALUATIONS:
        fps = 12.0 if world in ev.TAKES_FPS else None
        assert ev.evaluate(Stub(world), 8, ("canonical",), steps=4, fps=fps) == {"ok": 1}
    assert [c[0] for c in calls] == [c[1] for c in calls] == list(ev.EVALUATIONS)
    motion = next(c for c in calls if c[0] == "motion")
    assert motion[2:] == (8, ("canonical",), dict(steps=4, solver=None, guidance=None, fps=12.0))


def test_a_world_without_an_evaluation_is_refused_with_the_list():
    with pytest.raises(ValueError, match=r"data='folder'.*\['bounce', 'digits'"):
        ev.evaluate(Stub("folder"), 8)
    with pytest.raises(ValueError, match="--fps is for video models"):
        ev.evaluate(Stub("shapes"), 8, fps=12.0)
