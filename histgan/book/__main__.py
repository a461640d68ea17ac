"""``python -m histgan.book``: the main job (:func:`histgan.book.pipeline.main`)."""

import sys

from histgan.book.pipeline import main

sys.exit(main())
