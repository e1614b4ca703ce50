"""`python -m nacrith.cli`, as when the command line was one module."""

import sys

from nacrith.cli import main

sys.exit(main())
