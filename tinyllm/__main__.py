"""`python -m tinyllm`: the same as the `tinyllm` command."""

import sys

from .cli import main

sys.exit(main())
