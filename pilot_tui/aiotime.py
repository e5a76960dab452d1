"""Bounding an await in time without losing a cancellation.

Python 3.11's ``asyncio.wait_for`` swallows a cancellation that arrives while the awaited thing is finishing:
it sees the inner future done and returns its result, so the task carries on as if never cancelled (fixed in
3.12). For loops that wait on an event or a pilotctl run again and again, that means an engine that sometimes
ignores Ctrl-C, and a test teardown that waits for it for ever. :func:`within` uses ``asyncio.timeout`` where it
exists (3.11+), whose cancellation accounting keeps an outside cancel, and ``wait_for`` on 3.10.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

if sys.version_info >= (3, 11):

    async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
        """``await awaitable``, raising ``TimeoutError`` (= ``asyncio.TimeoutError``) after ``seconds``."""
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover - exercised on 3.10 only

    async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
        """``await awaitable``, raising ``asyncio.TimeoutError`` after ``seconds``."""
        return await asyncio.wait_for(awaitable, seconds)
