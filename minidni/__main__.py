"""``python -m minidni``: the same as the ``minidni`` command."""

import sys

from .tools.cli import main

sys.exit(main())
