"""Fixtures of the engine tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.positioning.fake_provider import FakeProvider, serve_provider


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    """A fake geolocation provider on a free port of 127.0.0.1."""
    async for fake in serve_provider():
        yield fake
