"""``python -m histgan``: see :mod:`histgan.cli`."""

from histgan.cli import main

raise SystemExit(main())
