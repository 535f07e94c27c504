"""``python -m turnlog.adapters.cli``: the ``turnlog`` command."""

import sys

from ._main import main

sys.exit(main())
