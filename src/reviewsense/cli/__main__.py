"""``python -m reviewsense.cli``: the same as the ``reviewsense`` command."""

import sys

from . import main

sys.exit(main())
