"""The package installs, documents itself, and its two environment descriptions agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_every_runtime_dependency_is_in_environment_yml():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = (ROOT / "environment.yml").read_text()
    env_names = {_name(m.group(1)) for m in re.finditer(r"^\s*-\s+([A-Za-z0-9_.\-]+[^\n#]*)", env, re.M)}
    missing = sorted(_name(d) for d in deps if _name(d) not in env_names)
    assert not missing, f"environment.yml lacks runtime dependencies from pyproject.toml: {missing}"


def test_no_torchvision_dependency():
    text = (ROOT / "pyproject.toml").read_text() + (ROOT / "environment.yml").read_text()
    assert "torchvision" not in text


def test_help_shows_equation_and_shapes():
    out = subprocess.run(
        [sys.executable, "-c", "import histgan; help(histgan.soft_histogram)"],
        capture_output=True, text=True, check=True, env={"PAGER": "cat", "PATH": ""},
    ).stdout
    assert "eq (3)–(4)" in out and "(N, C, H, W)" in out


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "histgan", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "COMMAND" in out.stdout


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make book" in readme
    assert re.search(r"^make test$", (ROOT / ".ci/run").read_text(), re.M)


def test_cli_turns_disk_errors_into_one_line(monkeypatch, capsys):
    import errno

    from histgan import cli
    from histgan.data import synthetic

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoints/step_000010.pt")

    monkeypatch.setattr(synthetic, "write_dataset", full_disk)
    assert cli.main(["data", "synth", "--out", "/tmp/never-written", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "step_000010.pt" in err[0]


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    import os

    from histgan.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        plain = tmp_path / "b.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
