"""`python -m fvopt.cli ...`: the same as the `fvopt` command."""

import sys

from .main import main

sys.exit(main())
