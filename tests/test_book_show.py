"""The book shows the package's own docstrings rendered, not as raw reStructuredText."""

from __future__ import annotations

from histgan.book.show import docstring_markdown


def test_a_simple_table_becomes_a_markdown_table_with_its_cells_intact():
    rst = ("Intro ``x``.\n\n"
           "=====  ==============  =====\n"
           "a      b               c\n"
           "=====  ==============  =====\n"
           "1      ``two words``   three\n"
           "=====  ==============  =====\n")
    md = docstring_markdown(rst).splitlines()
    assert md[0] == "Intro `x`."
    assert md[2:] == ["| a | b | c |", "|---|---|---|", "| 1 | `two words` | three |"]


def test_roles_and_rubrics_become_code_and_bold():
    md = docstring_markdown(".. rubric:: Notes\n\nSee :func:`histgan.histogram.soft_histogram` and :mod:`~histgan.io`.")
    assert md == "**Notes**\n\nSee `histgan.histogram.soft_histogram` and `histgan.io`."
