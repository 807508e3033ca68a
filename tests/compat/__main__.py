from __future__ import annotations

import sys

from tests.compat.runner import main

sys.exit(main())
