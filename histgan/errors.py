"""Errors meant for people: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class HistganError(Exception):
    """A problem with the user's input, files or environment, with a message saying what to do.

    Library code raises this (or ``ValueError`` for a bad parameter, ``FileNotFoundError`` for a
    missing path); ``python -m histgan`` turns any of them into ``histgan: error: <message>`` and
    exit code 2, with no traceback.
    """
