"""``python -m histgan.book``: the main job (:func:`histgan.book.pipeline.main`)."""

import sys

from histgan.io import skip_iri_syntax_checker

skip_iri_syntax_checker()  # this process runs notebooks; see its docstring
from histgan.book.pipeline import main  # noqa: E402  (after the call: the pipeline may import nbformat)

sys.exit(main())
