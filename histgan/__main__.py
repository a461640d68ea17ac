"""``python -m histgan``: see :mod:`histgan.cli`."""

from histgan.io import skip_iri_syntax_checker

skip_iri_syntax_checker()  # this process may run notebooks (sweep); see its docstring
from histgan.cli import main  # noqa: E402  (after the call: a command may import nbformat)

raise SystemExit(main())
