"""``python -m minidni``: the same as the ``minidni`` command."""

import sys

from .cli import main

sys.exit(main())
