import sys

from nacrith.cli import main

sys.exit(main())
