"""`python3 -m netapi` serves; `python3 -m netapi migrate PHASE` runs a migration phase."""

import sys

if sys.argv[1:2] == ["migrate"]:
    from .migrate import main as migrate_main

    sys.exit(migrate_main(sys.argv[2:]))

from .server import main  # noqa: E402

sys.exit(main())
