"""The web studio: the job runner alone, then a real server driven through gradio_client."""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from app.studio import Done, Progress, Studio
from benchmarks.serve import running_app
from pipelines.outputs import read_png_settings
from pipelines.request import Request, RequestError

PROMPT = "a small red circle on the left"


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Studio:
    return Studio(outputs_dir=tmp_path_factory.mktemp("outputs"))


def test_job_streams_previews_then_writes_the_cli_bytes(studio, tmp_path):
    req = Request(prompt=PROMPT, seed=3, steps=4, num_outputs=2)
    items = list(studio.run(req))
    progress, done = items[:-1], items[-1]
    assert [p.step for p in progress] == [1, 2, 3, 4]
    assert all(isinstance(p, Progress) and len(p.preview) == 2 for p in progress)
    assert isinstance(done, Done) and len(done.paths) == 2
    # the last preview is the final image; the file holds exactly what the CLI writes
    pipe = studio.pipeline("shapes-t2i")
    cli_paths = pipe.save(pipe(studio.validate(req)), tmp_path)
    for ours, theirs in zip(done.paths, cli_paths, strict=True):
        assert ours.read_bytes() == theirs.read_bytes()
        assert read_png_settings(ours)["prompt"] == PROMPT
    assert (
        progress[-1].preview[0]
        == pipe.decode(pipe.sample(studio.validate(req)), studio.validate(req))[0]
    ).all()


def test_cancel_stops_at_the_next_step_and_writes_nothing(studio):
    before = set(studio.outputs_dir.rglob("*.png"))
    steps_seen = []
    for item in studio.run(Request(prompt=PROMPT, seed=1, steps=60), session="s1"):
        steps_seen.append(item.step)
        if item.step == 2:
            assert studio.cancel("s1") == 1
    assert steps_seen and steps_seen[-1] <= 3 < 60  # stopped within a step of the request
    assert set(studio.outputs_dir.rglob("*.png")) == before
    assert studio.cancel("s1") == 0  # the job is gone: nothing left to cancel


def test_closing_the_stream_cancels_the_job(studio):
    stream = studio.run(Request(prompt=PROMPT, seed=1, steps=80))
    next(stream)
    stream.close()  # what a cancelled web request does: joins the stopped worker
    assert not [t for t in threading.enumerate() if t.name.startswith("job-")]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"width": 33}, "multiple of 4"),
        ({"steps": 0}, "steps=0"),
        ({"steps": 101}, "steps=101"),  # the server's limit (100) is below the model's (200)
        ({"num_outputs": 9}, "num_outputs=9"),
        ({"prompt": "x" * 2001}, "2001 bytes"),
        ({"guidance": float("inf")}, "finite"),
        ({"model": "no-such-model"}, "not offered"),
        ({"width": 512, "height": 512}, "out of range"),
    ],
)
def test_limits_are_clear_errors(studio, changes, words):
    with pytest.raises(RequestError, match=words):
        studio.validate(Request(**{"prompt": PROMPT, **changes}))


# --- a real server --------------------------------------------------------------------------

FORM = dict(
    model="shapes-t2i",
    prompt=PROMPT,
    negative_prompt="",
    seed=11,
    random_seed=False,
    steps=6,
    guidance=3.0,
    solver="heun",
    width=32,
    height=32,
    num_outputs=2,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    out = tmp_path_factory.mktemp("app") / "outputs"
    with running_app(out) as (url, proc, seconds):
        print(f"app served its page {seconds:.1f} s after start")
        yield url, proc, seconds


def test_api_returns_the_cli_bytes_and_survives_bad_requests(server, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, proc, _ = server
    client = Client(url, verbose=False)
    _, files, status, _ = client.predict(**FORM, api_name="/generate")
    assert "Done" in status and len(files) == 2

    cli = [
        sys.executable,
        "-m",
        "app.cli",
        "generate",
        PROMPT,
        "--seed",
        "11",
        "--steps",
        "6",
        "--guidance",
        "3",
        "--solver",
        "heun",
        "--num-outputs",
        "2",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    subprocess.run(cli, check=True, capture_output=True)
    for path in files:
        name = path.rsplit("/", 1)[-1]
        assert Path(path).read_bytes() == (tmp_path / name).read_bytes(), name

    for bad, words in [
        ({"width": 30}, "multiple of 4"),
        # the page's sliders check their own range first; either message names the fix
        ({"steps": 0}, "steps=0|less than minimum value 1"),
        ({"prompt": "y" * 5000}, "5000 bytes"),
        ({"num_outputs": 99}, "num_outputs=99|greater than maximum value 8"),
        ({"model": "../../etc"}, "not offered|not in the list of choices"),
        ({"seed": None}, "seed is empty"),
    ]:
        with pytest.raises(AppError, match=words):
            client.predict(**{**FORM, **bad}, api_name="/generate")
    assert proc.poll() is None  # still serving
    _, files, status, _ = client.predict(**{**FORM, "num_outputs": 1}, api_name="/generate")
    assert "Done" in status and len(files) == 1
    # the tab's masked model through the same endpoint, with its own solver
    masked = {
        **FORM,
        "model": "shapes-t2i-masked",
        "solver": "maskgit",
        "steps": 4,
        "num_outputs": 1,
    }
    _, files, status, _ = client.predict(**masked, api_name="/generate")
    assert "Done" in status and len(files) == 1
    with pytest.raises(AppError, match="solver='heun' is unknown: choose one of"):
        client.predict(**{**masked, "solver": "heun"}, api_name="/generate")


def test_load_16_clients_x_5_requests_all_served_with_queue_positions(server):
    from benchmarks.app import load_test

    url, proc, _ = server
    r = load_test(url, proc.pid, clients=16, requests=5, steps=1)
    print(
        f"load: {r.served}/{r.sent} served in {r.seconds:.1f} s, max queue position "
        f"{r.max_rank_seen}, server peak {r.peak_server_mib:.0f} MiB"
    )
    assert r.errors == []
    assert r.sent == r.served == 80 and r.lost == 0
    assert r.max_rank_seen >= 1  # waiting clients were told their place in the queue
    assert proc.poll() is None


def test_auth_is_required_when_asked(tmp_path):
    from gradio_client import Client

    with running_app(tmp_path / "outputs", "--auth", "ada:secret") as (url, _, _):
        with pytest.raises(Exception):  # noqa: B017 (gradio_client raises several kinds)
            Client(url, verbose=False)
        # the login page carries no API description (Gradio embeds one; app/page_guard.py)
        page = urllib.request.urlopen(url, timeout=30).read()
        assert b'"auth_required":true' in page.replace(b" ", b"")
        assert b"window.gradio_api_info = null;" in page and b"/generate" not in page
        client = Client(url, auth=("ada", "secret"), verbose=False)
        _, files, status, _ = client.predict(
            **{**FORM, "num_outputs": 1, "steps": 1}, api_name="/generate"
        )
        assert "Done" in status and len(files) == 1


def test_app_rejects_bad_flags(capsys):
    from app.cli import main

    assert main(["app", "--auth", "nopassword"]) == 2
    assert main(["app", "--models-dir", "/no/such/dir"]) == 2
    err = capsys.readouterr().err
    assert "user:password" in err and "does not exist" in err


def test_api_names_are_stable_with_every_bundled_modality():
    """With image and audio models installed, "/generate" is still the image tab's button
    (a private event once took the name) and the image tab comes first."""
    from app.studio import Studio
    from app.web import build_demo

    fns = list(build_demo(Studio()).fns.values())
    names = [f.api_name for f in fns]
    assert {"generate", "generate_audio", "read_settings_image", "read_settings_audio"} <= set(
        names
    )
    assert names.index("generate") < names.index("generate_audio")


def test_uploads_over_the_limit_are_refused(server):
    import urllib.error
    import urllib.request

    url, _, _ = server
    boundary = "xxboundaryxx"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
    ).encode()
    body += b"\0" * (21 * 1024 * 1024) + f"\r\n--{boundary}--\r\n".encode()
    kind = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    req = urllib.request.Request(f"{url.rstrip('/')}/gradio_api/upload", data=body, headers=kind)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code in (400, 413)


def test_adapters_are_offered_only_on_their_models_tab(studio):
    assert "teal" in studio.loras_for("image")
    assert "teal" not in studio.loras_for("audio") and "teal" not in studio.loras_for("video")
    assert studio.lora_base("teal") == "shapes-t2i"
    ok = studio.validate(Request(prompt=PROMPT, loras=(("teal", 1.0),)))
    assert studio.validate(ok) == ok  # a validated request (folders) validates to itself
    with pytest.raises(RequestError, match="trained for 'shapes-t2i'"):
        studio.validate(
            Request(prompt="a handwritten seven", model="digits-t2i", loras=(("teal", 1.0),))
        )
