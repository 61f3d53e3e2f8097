"""`python -m elysium.cli ...` is the `elysium` command; `accelerate launch -m elysium.cli data build ...` runs the
data engine on several processes."""

import sys

from elysium.cli import main

sys.exit(main())
