"""``python -m api`` runs the command line (used by tests that need no installed script)."""

import sys

from .cli import main

sys.exit(main())
