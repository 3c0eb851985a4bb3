"""`python -m fvopt.cli ...`: the same as the `fvopt` command."""

import sys

from .app import main

sys.exit(main())
