"""``python -m pyrodps``: the command line (:mod:`pyrodps.app.cli`)."""

import sys

from pyrodps.app.cli import main

sys.exit(main())
