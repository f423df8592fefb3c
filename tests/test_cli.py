import subprocess
import sys

import pytest

from app.cli import main


def test_version_and_help(capsys):
    for flag in ("--version", "--help"):
        try:
            main([flag])
        except SystemExit as e:
            assert e.code == 0
    out = capsys.readouterr().out
    assert "dit-studio 0.1.0" in out and "bench" in out


def test_console_script_is_installed():
    exe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlib.metadata import entry_points as e; "
            "print([x.value for x in e(group='console_scripts') if x.name=='dit-studio'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "app.cli:main" in exe.stdout


def test_help_and_models_answer_without_importing_torch():
    import subprocess
    import sys

    code = (
        "import sys\nfrom app.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert main(['models']) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "shapes-t2i" in done.stdout and "modality" in done.stdout
    assert "digits-t2i: accuracy, held-out phrasings 98.3% / >= 95%" in done.stdout  # its card
    assert "meets its targets" in done.stdout and "short of" in done.stdout


def test_an_empty_prompt_is_a_clear_error(capsys):
    from app.cli import main

    assert main(["generate", "  ", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "prompt is empty" in err and "Traceback" not in err


def _damage(folder, case):
    import json

    index = folder / "model_index.json"
    weights = next((folder / "transformer").glob("*.safetensors"))
    if case == "unknown key":
        d = json.loads(index.read_text())
        d["studio"]["bogus"] = 1
        index.write_text(json.dumps(d))
    elif case == "studio is a list":
        d = json.loads(index.read_text())
        d["studio"] = [1, 2]
        index.write_text(json.dumps(d))
    elif case == "malformed index":
        index.write_text('{"studio": ')
    elif case == "malformed config":
        (folder / "transformer" / "config.json").write_text('{"depth": ')
    elif case == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif case == "empty weights":
        weights.write_bytes(b"")
    return {
        "unknown key": "model_index.json",
        "studio is a list": "model_index.json",
        "malformed index": "model_index.json",
        "malformed config": "config.json",
        "truncated weights": ".safetensors",
        "empty weights": ".safetensors",
    }[case]


CASES = [
    "unknown key",
    "studio is a list",
    "malformed index",
    "malformed config",
    "truncated weights",
    "empty weights",
]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_model_folder_is_one_line_naming_the_file(case, tmp_path, capsys):
    import shutil

    from app.cli import main
    from pipelines.spec import ASSETS

    folder = tmp_path / "model"
    shutil.copytree(ASSETS / "digits-t2i", folder)
    name = _damage(folder, case)
    assert main(["generate", "the digit 3", "--model", str(folder), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and "Traceback" not in err, err


def test_an_overlong_model_name_is_one_line(tmp_path, capsys):
    from app.cli import main

    assert main(["generate", "a red circle", "--model", "x" * 5000, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "too long" in err, err


def test_a_too_short_duration_is_refused(tmp_path, capsys):
    from app.cli import main

    args = ["generate", "a bell", "--audio", "--duration", "1e-9", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "too short" in err and not list(tmp_path.iterdir())


def test_train_and_bench_show_their_own_help(capsys):
    for command, flag in (("train", "--out"), ("bench", "--presets")):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "-h"])
        assert exit_info.value.code == 0 and flag in capsys.readouterr().out
