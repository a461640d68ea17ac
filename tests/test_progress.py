"""Progress bars forwarded from child processes (a notebook's kernel) to the job's terminal."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from histgan.progress import PROGRESS_ENV, forward_progress, progress_bar

CHILD = ("from histgan.progress import progress_bar\n"
         "for _ in progress_bar(range(5), desc='child-bar', unit='step'):\n"
         "    pass\n"
         "print('printed by the child')\n")


def test_child_bars_reach_the_terminal_as_lines_and_the_variable_is_restored():
    out = io.StringIO()
    before = os.environ.get(PROGRESS_ENV)
    with forward_progress(out=out, prefix="> ") as path:
        assert os.environ[PROGRESS_ENV] == str(path)
        done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    assert os.environ.get(PROGRESS_ENV) == before and not path.exists()
    lines = [line for line in out.getvalue().splitlines() if line]
    assert lines and all(line.startswith("> child-bar") for line in lines), lines
    assert any("5/5" in line and "step/s" in line for line in lines), lines
    assert "child-bar" not in done.stdout + done.stderr, "the bar must not go to the child's own output"
    assert "printed by the child" in done.stdout


def test_without_the_variable_bars_are_tqdms_own(monkeypatch, tmp_path):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    stream = io.StringIO()
    bar = progress_bar(range(3), file=stream, desc="plain")
    list(bar)
    bar.close()
    assert "plain" in stream.getvalue() and "3/3" in stream.getvalue()
    monkeypatch.setenv(PROGRESS_ENV, str(tmp_path / "p.log"))
    bar = progress_bar(range(3), disable=True)
    list(bar)
    bar.close()
    assert not (tmp_path / "p.log").exists(), "a disabled bar writes nothing"


def test_a_file_bar_closes_twice_without_error(monkeypatch, tmp_path):
    """A bar writing to the progress file may be closed explicitly and then again by tqdm's ``__del__``
    (garbage collection): the second close writes nothing and raises nothing."""
    path = tmp_path / "progress.txt"
    monkeypatch.setenv(PROGRESS_ENV, str(path))
    bar = progress_bar(range(3), total=3, desc="twice")
    for _ in bar:
        pass
    bar.close()
    size = path.stat().st_size
    bar.close()
    bar.__del__()
    assert path.stat().st_size == size and path.read_text(encoding="utf-8").endswith("\n")


def test_whole_lines_end_each_copied_line_so_other_writers_start_on_their_own():
    """In a log (not a terminal), the pool's forwarded bar lines end with their newline: a status line
    printed between two of them is not glued onto the end of a bar line."""
    out = io.StringIO()
    with forward_progress(out=out, prefix="> ", whole_lines=True):
        subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
        import time

        deadline = time.monotonic() + 30
        while "5/5" not in out.getvalue() and time.monotonic() < deadline:  # the bar's last line is copied
            time.sleep(0.1)
        out.write("[2/3] status line\n")
    text = out.getvalue()
    assert text.endswith("\n") and "\n[2/3] status line\n" in text and not text.startswith("\n"), text
    assert all(line.startswith(("> child-bar", "[2/3]")) for line in text.splitlines()), text
