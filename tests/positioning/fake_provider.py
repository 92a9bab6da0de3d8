"""A fake geolocation provider: a real aiohttp server on 127.0.0.1, answering as told.

It speaks both formats (`/v1/geolocate` MLS, `/v2/process` Unwired Labs), records every request
(path, query, headers, JSON body) and answers from a queue of responders, or with a good answer
in the path's format when the queue is empty.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ANSWER = {"location": {"lat": 52.5163, "lng": 13.3777}, "accuracy": 42.4}

type Responder = Callable[[dict[str, Any]], web.StreamResponse | Any]


@dataclass
class FakeProvider:
    """An HTTP server answering geolocate requests as told, recording what it received."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    responses: list[Responder] = field(default_factory=list)
    #: set at the end of the test: frees handlers that never answer
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        respond = self.responses.pop(0) if self.responses else self.default(request.path)
        result = respond(body)
        if asyncio.iscoroutine(result):
            result = await result
        return result  # type: ignore[no-any-return]

    def default(self, path: str) -> Responder:
        """A good answer in the format of the path's provider."""
        if path == "/v2/process":
            return lambda _: web.json_response(
                {"status": "ok", "balance": 99, "lat": 52.5163, "lon": 13.3777, "accuracy": 300}
            )
        return lambda _: web.json_response(ANSWER)

    async def never(self, _: dict[str, Any]) -> web.Response:
        """Answer only when the test is over (a provider that hangs)."""
        await self.release.wait()
        return web.json_response(ANSWER)


async def serve_provider() -> AsyncIterator[FakeProvider]:
    """Run a fake provider on a free port of 127.0.0.1 until the generator is closed."""
    fake = FakeProvider()
    app = web.Application()
    app.router.add_post("/v1/geolocate", fake.handle)
    app.router.add_post("/v2/process", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    fake.release.set()
    await runner.cleanup()
