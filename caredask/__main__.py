"""``python -m caredask``: the ``caredask`` command line."""

import sys

from caredask.cli.main import main

sys.exit(main())
