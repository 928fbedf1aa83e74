"""Test-only plug-in: the zygote of the framework named in INTEROP_TEST_SLOW_ZYGOTE ("tensorflow:8") takes that
many seconds longer to get ready, as a zygote importing a heavy framework on a loaded machine does."""

from __future__ import annotations

import os
import sys
import time

_framework, _, _seconds = os.environ.get("INTEROP_TEST_SLOW_ZYGOTE", "").partition(":")
if _framework and sys.argv[0].endswith("zygote.py") and _framework in sys.argv:
    time.sleep(float(_seconds or 5))
