"""``python -m smoothbench.cli``: the ``smoothbench`` command."""

import sys

from .commands import main

sys.exit(main())
