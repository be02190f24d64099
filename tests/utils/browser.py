"""What the browser tests (marker `browser`) need, and what happens without it: a skip on a
developer's machine, a failure under CI (`CI=true`), which installs both."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's, installed by scripts/setup.sh --test


@functools.cache
def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed"
    if not CHROMIUM.exists():
        return "Debian's chromium is not installed"
    return None


def require_browser() -> None:
    """Skip the calling test when the browser is missing; fail it under CI."""
    missing = browser_missing()
    if missing is None:
        from playwright.sync_api import expect

        expect.set_options(timeout=60_000)  # 2 shared cores: generous, still ends on success
        return
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{missing}, and CI must run the browser tests "
                    "(scripts/setup.sh --test installs them)", pytrace=False)
    pytest.skip(f"{missing} (scripts/setup.sh --test installs it)")
