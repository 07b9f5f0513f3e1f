"""`python -m emulate`: the `emulate` command."""

import sys

from .cli.main import entry

sys.exit(entry())
