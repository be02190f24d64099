"""`python -m trainer`: what the trainer image runs."""

import sys

from .cli import main

sys.exit(main())
