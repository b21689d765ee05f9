"""``python -m router``: the same as the ``tocsin`` command."""

import sys

from router.cli import main

sys.exit(main())
