"""`python -m emulate`: the `emulate` command."""

import sys

from .cli.main import main

sys.exit(main())
