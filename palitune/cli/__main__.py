"""``python -m palitune.cli``: the ``palitune`` command."""

import sys

from palitune.cli import main

sys.exit(main())
