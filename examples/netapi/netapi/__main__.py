"""`python3 -m netapi`."""

import sys

from netapi.server import main

sys.exit(main())
