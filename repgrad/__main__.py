"""``python -m repgrad``: the same as the ``repgrad`` command."""

import sys

from .cli import main

sys.exit(main())
