"""Small helpers shared by the test modules (imported as ``support``: pytest puts ``tests/`` on the path)."""

from __future__ import annotations

from histgan.cli import main


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """``python -m histgan ARGS`` in this process: (exit code, what it wrote to stderr)."""
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err
