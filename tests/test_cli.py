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
