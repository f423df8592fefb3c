import subprocess
import sys

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


def test_an_empty_prompt_is_a_clear_error(capsys):
    from app.cli import main

    assert main(["generate", "  ", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "prompt is empty" in err and "Traceback" not in err
