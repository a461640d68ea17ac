"""The package installs, documents itself, and its two environment descriptions agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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


def _wheel(tmp_path: Path) -> Path:
    """The wheel, built from a copy of what it is made of (a build in the checkout would leave ``build/``
    behind, whose stale files a later build would package)."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(ROOT / "histgan", src / "histgan", ignore=shutil.ignore_patterns("__pycache__"))
    (src / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "03_training.py", src / "notebooks")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(src)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("histgan-*.whl")
    return wheel


def test_the_book_toolchain_is_an_extra_not_a_requirement(tmp_path):
    """``pip install histgan`` (to translate images) does not pull Jupyter Book, papermill or JupyterLab;
    ``pip install histgan[book]`` does; the wheel carries the training notebook the sweeps execute."""
    import zipfile

    with zipfile.ZipFile(_wheel(tmp_path)) as whl:
        meta = next(whl.read(n).decode() for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        names = whl.namelist()
    requires = re.findall(r"^Requires-Dist: (.+)$", meta, re.M)
    plain = {_name(r) for r in requires if "extra ==" not in r}
    book = {_name(r) for r in requires if 'extra == "book"' in r}
    assert {"torch", "numpy"} <= plain and not plain & {"jupyter-book", "papermill", "jupyterlab", "jupytext"}
    assert {"jupyter-book", "papermill", "jupyterlab", "jupytext", "ipykernel"} <= book
    assert any(n.endswith(".data/data/share/histgan/notebooks/03_training.py") for n in names)


def test_every_book_dependency_is_in_environment_yml():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    env = (ROOT / "environment.yml").read_text()
    env_names = {_name(m.group(1)) for m in re.finditer(r"^\s*-\s+([A-Za-z0-9_.\-]+[^\n#]*)", env, re.M)}
    assert not sorted(_name(d) for d in extras["book"] if _name(d) not in env_names)


@pytest.mark.slow
def test_a_non_editable_install_translates_and_sweeps(tmp_path):
    """The wheel installed (not editable) into a new virtual environment, away from the checkout: the CLI's
    help works, and a one-point sweep of the quick preset finds the installed training notebook. The new
    environment borrows this one's third-party packages through a path file (nothing is downloaded)."""
    import sysconfig
    import venv

    wheel = _wheel(tmp_path / "wheel")
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    where = subprocess.run([str(python), "-c", "import histgan; print(histgan.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(env_dir)), f"the installed package must be imported, not the checkout: {where}"
    helped = subprocess.run([str(env_dir / "bin" / "histgan"), "translate", "--help"], cwd=work, env=env,
                            capture_output=True, text=True)
    assert helped.returncode == 0 and "--reference" in helped.stdout, helped.stderr
    swept = subprocess.run([str(env_dir / "bin" / "histgan"), "sweep", "--name", "n", "--grid", "bins=16",
                            "--preset", "quick", "--steps", "2", "--out", str(work / "runs"), "--no-collect",
                            "--no-progress"], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert swept.returncode == 0, swept.stdout[-2000:] + swept.stderr[-2000:]
    (run,) = (work / "runs" / "n").glob("*bins=16*")
    assert (run / "03_training.ipynb").is_file() and (run / "checkpoints" / "latest.pt").is_file()
