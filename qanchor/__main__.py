"""``python -m qanchor`` is the ``qanchor`` command (e.g. ``python -X importtime -m qanchor --help``)."""

import sys

from qanchor.cli import main

sys.exit(main())
