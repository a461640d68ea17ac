"""``python -m histgan``: see :mod:`histgan.cli`."""

from histgan.book.notebooks import skip_iri_syntax_checker
from histgan.cli import main

skip_iri_syntax_checker()  # this process may run notebooks (sweep); see its docstring
raise SystemExit(main())
