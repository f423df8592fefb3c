"""Malformed values thrown at every entry point of a request; the only exception allowed out of
any of them is :class:`RequestError` (the batch runner's contract is stronger: it never raises,
and every line becomes a job or a bad line with its reason).

    python -m benchmarks.fuzz [--cases 10000]      # the long run: counts per layer

``tests/test_fuzz.py`` runs the same layers, a few hundred cases each. Layers:

* ``request``: ``Request.from_dict(d).resolve(...)`` against a bundled model's defaults and limits;
* ``direct``: ``Request(**d).resolve(...)`` (the Python API, with no ``from_dict``);
* ``batch``: a JSONL file of such lines through ``app.batch.parse_jobs``;
* ``form``: the web form's values through ``app.form.form_request`` and the model's limits;
* ``replay``: a studio file's settings through ``app.form.replayed``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.form import FORM
from pipelines.request import Request, RequestError

FIELDS = [f.name for f in fields(Request)]
MODELS = ("shapes-t2i", "sounds-t2a", "motion-t2v", "shapes-t2i-masked")

# Values people (and files) send: edge numbers, huge integers, long paths, wrong types.
atoms = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**63, 10**400, 2**31, 7, 8, 16, 32, 48]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.05, 0.5, 1.0, 2.0, 3.0, 12.0, 1e-9, 1e308, -0.0]),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "a red circle",
            "heun",
            "euler",
            "maskgit",
            "magnet",
            "x" * 5000,
            "teal",
            "assets/loras/teal",
            "../../etc/passwd",
            "\ud800",
            *MODELS,
        ]
    ),
)


def _nested(inner):
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)


values = st.recursive(atoms, _nested, max_leaves=6)
keys = st.sampled_from([*FIELDS, "id", "modality", "bogus"])
requests = st.dictionaries(keys, values, max_size=8)
form_values = st.fixed_dictionaries({k: values for k in FORM})

_specs: dict[str, Any] = {}


def _spec(model: Any):
    from pipelines.spec import ModelSpec, resolve_model

    name = model if model in MODELS else MODELS[0]
    if name not in _specs:
        _specs[name] = ModelSpec.read(resolve_model(name))[1]
    return _specs[name]


def _resolve(req: Request) -> None:
    spec = _spec(req.model)
    req.resolve(spec.request_defaults(), spec.request_limits())


def layer_request(d: dict) -> None:
    d = {k: v for k, v in d.items() if k in FIELDS}
    _resolve(Request.from_dict(d))


def layer_direct(d: dict) -> None:
    d = {k: v for k, v in d.items() if k in FIELDS}
    if "prompt" not in d:
        d["prompt"] = "a red circle"
    _resolve(Request(**d))


def layer_form(values: dict) -> None:
    from app.form import form_request

    _resolve(form_request(values))


def layer_replay(settings: Any) -> None:
    from app.form import replayed

    replayed(settings)


def layer_batch(lines: list[dict], folder: Path) -> None:
    """Never raises; every line is a job or a bad line."""
    from app.batch import parse_jobs

    path = folder / "jobs.jsonl"
    text = [json.dumps(d, default=str) if not isinstance(d, str) else d for d in lines]
    path.write_text("\n".join(text), encoding="utf-8", errors="surrogateescape")
    jobs, bad = parse_jobs(path)
    rows = [r.removesuffix("\r") for t in text for r in t.split("\n")]
    counted = [r for r in rows if r.strip() and not r.lstrip().startswith("#")]
    assert len(jobs) + len(bad) == len(counted), (jobs, bad, text)


def _allowed(fn, *args) -> None:
    with contextlib.suppress(RequestError):
        fn(*args)


def checks(cases: int):
    """(name, hypothesis test) per layer, ``cases`` examples each."""
    run = settings(
        max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    folder = Path(tempfile.mkdtemp(prefix="dit-fuzz-"))
    nonfinite = st.sampled_from([math.nan, math.inf, 10**400, "1e999"])
    return [
        ("request", run(given(requests))(lambda d: _allowed(layer_request, d))),
        ("direct", run(given(requests))(lambda d: _allowed(layer_direct, d))),
        ("form", run(given(form_values))(lambda v: _allowed(layer_form, v))),
        ("replay", run(given(requests | values))(lambda s: _allowed(layer_replay, s))),
        (
            "batch",
            run(
                given(
                    st.lists(
                        requests
                        | st.text(max_size=30)
                        | nonfinite.map(lambda x: {"prompt": "a", "guidance": x}),
                        max_size=4,
                    )
                )
            )(lambda lines: layer_batch(lines, folder)),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__)
    ap.add_argument("--cases", type=int, default=10_000, help="cases per layer")
    args = ap.parse_args(argv)
    print("| layer | cases | exceptions other than RequestError |\n|---|---|---|")
    failed = 0
    for name, check in checks(args.cases):
        try:
            check()
            print(f"| {name} | {args.cases} | 0 |", flush=True)
        except Exception as e:  # hypothesis re-raises the smallest failing case
            failed += 1
            print(f"| {name} | {args.cases} | 1+: {type(e).__name__}: {e} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
