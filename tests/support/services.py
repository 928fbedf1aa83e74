"""Whether a missing service skips a test (a user's machine) or fails the run (CI)."""

from __future__ import annotations

import os

import pytest


def services_required() -> bool:
    """INTEROP_REQUIRE_SERVICES=1 (set by .ci/run) turns every would-be skip into a failure."""
    return os.environ.get("INTEROP_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip with a clear reason, or fail when services are required."""
    if services_required():
        pytest.fail(f"required service missing (INTEROP_REQUIRE_SERVICES=1): {reason}", pytrace=False)
    pytest.skip(reason)
