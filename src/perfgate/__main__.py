"""``python -m perfgate``: the console script, where no entry point is installed (a bare image)."""

import sys

from perfgate.cli import main

sys.exit(main())
