"""``python -m graphbp``: the ``graphbp`` command line, with the same exit statuses."""

import sys

from graphbp.cli import main

sys.exit(main())
