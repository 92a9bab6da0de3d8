"""Online providers against a real HTTP server on 127.0.0.1: formats, cache, limits, errors.

The request bodies are built from real captured frames (the shared vectors), decoded by the
integration's own decoders, so what the providers receive is what a real tracker causes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
import json
import logging
from typing import Any

from aiohttp import ClientSession, web
import pytest

from custom_components.tk970.positioning import (
    Kind,
    Method,
    Observation,
    OnlineLookup,
    Outcome,
    Problem,
    ProviderConfig,
    ProviderKind,
    observe,
)
from custom_components.tk970.positioning.observations import ObservedCell
from tests.positioning.fake_provider import ANSWER, FakeProvider, Responder
from tests.protocol.helpers import decode_datagram
from tests.protocol.vectors import load

pytestmark = pytest.mark.usefixtures("socket_enabled")

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    """A client session, as Home Assistant's shared one would be."""
    async with ClientSession() as client:
        yield client


class Clock:
    """A settable clock for the lookup's limits."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def vector_observation(vector_id: str) -> Observation:
    """The cells and access points of one captured frame, as the decoders read them."""
    family, line = vector_id.split(":")
    vector = next(v for v in load(family) if v.line == int(line))
    message = decode_datagram(vector.raw)[0][0].message
    return observe(message.cells, message.wifi)


def mls(fake: FakeProvider, key: str | None = None) -> ProviderConfig:
    return ProviderConfig(ProviderKind.MLS, f"{fake.url}/v1/geolocate", key)


def unwired(fake: FakeProvider, key: str = "pk.test-token") -> ProviderConfig:
    return ProviderConfig(ProviderKind.UNWIREDLABS, f"{fake.url}/v2/process", key)


def lookup_for(session: ClientSession, clock: Clock, **kwargs: Any) -> OnlineLookup:
    return OnlineLookup(lambda: session, clock=clock, user_agent="tk970-test/1", **kwargs)


async def test_mls_request_from_a_real_gt06_frame(
    provider: FakeProvider, session: ClientSession
) -> None:
    """A GT06 cell + Wi-Fi frame (vector gt06:14) becomes a privacy-safe geolocate request."""
    observation = vector_observation("gt06:14")
    online = lookup_for(session, Clock())
    result = await online.lookup(mls(provider, "secret-key"), "van", observation)
    assert result.outcome is Outcome.FOUND
    estimate = result.estimate
    assert estimate is not None
    assert (estimate.latitude, estimate.longitude, estimate.accuracy) == (52.5163, 13.3777, 43)
    assert (estimate.kind, estimate.method, estimate.provider) == (
        Kind.WIFI,
        Method.ONLINE,
        "127.0.0.1",
    )
    (request,) = provider.requests
    assert request["query"] == {"key": "secret-key"}
    assert request["headers"]["User-Agent"] == "tk970-test/1"
    body = request["body"]
    assert body["considerIp"] is False
    assert body["fallbacks"] == {"lacf": False, "ipf": False}
    towers = body["cellTowers"]
    assert [t["cellId"] for t in towers] == [c.key[3] for c in observation.cells]
    assert towers[0] == {
        "radioType": "lte",
        "mobileCountryCode": 732,
        "mobileNetworkCode": 101,
        "locationAreaCode": 27009,
        "cellId": 156671638,
        "signalStrength": -72,
    }
    points = body["wifiAccessPoints"]
    assert len(points) == 6
    assert points[0] == {"macAddress": "F2:7C:F6:4F:17:E1", "signalStrength": -60}
    assert all(-100 <= p.get("signalStrength", -50) < 0 for p in points)


async def test_unwired_request_from_a_real_jt808_frame(
    provider: FakeProvider, session: ClientSession
) -> None:
    """A JT808 0x0200 without a fix (vector jt808:16) becomes an Unwired Labs request."""
    observation = vector_observation("jt808:16")
    provider.responses.append(
        lambda _: web.json_response(
            {"status": "ok", "balance": 99, "lat": -33.8568, "lon": 151.2153, "accuracy": 1200}
        )
    )
    online = lookup_for(session, Clock())
    result = await online.lookup(unwired(provider), "van", observation)
    assert result.outcome is Outcome.FOUND
    assert result.estimate is not None
    assert (result.estimate.latitude, result.estimate.accuracy) == (-33.8568, 1200)
    assert result.estimate.kind is Kind.LBS  # too coarse for a Wi-Fi answer
    body = provider.requests[0]["body"]
    assert body["token"] == "pk.test-token"
    assert body["fallbacks"] == {"ipf": 0, "lacf": 0}
    assert (body["radio"], body["mcc"], body["mnc"]) == ("lte", 520, 4)
    assert body["cells"] == [{"radio": "lte", "mcc": 520, "mnc": 4, "lac": 5042, "cid": 48522371}]
    assert [w["bssid"] for w in body["wifi"]] == [w.mac for w in observation.wifi]
    assert body["wifi"][0] == {"bssid": "30:de:4b:f6:73:68", "signal": -50}
    assert provider.requests[0]["query"] == {}


async def test_cache_single_flight_and_limits(
    provider: FakeProvider, session: ClientSession
) -> None:
    """The same stations are asked once; one tracker asks once per interval; a daily cap holds."""
    clock = Clock()
    online = lookup_for(session, clock, daily_cap=3)
    config = mls(provider)
    observation = vector_observation("gt06:14")
    first, joined = await asyncio.gather(
        online.lookup(config, "van", observation), online.lookup(config, "car", observation)
    )
    assert (first.outcome, joined.outcome) == (Outcome.FOUND, Outcome.FOUND)
    assert first.estimate == joined.estimate
    # Other signal levels, same stations: the cache answers.
    louder = Observation(
        tuple(ObservedCell(c.key, -50) for c in observation.cells), observation.wifi
    )
    cached = await online.lookup(config, "van", louder)
    assert cached.outcome is Outcome.CACHED
    assert len(provider.requests) == 1
    # New stations from the same tracker a minute later: not yet.
    clock.now += timedelta(minutes=1)
    other = vector_observation("gt06:101")
    assert (await online.lookup(config, "van", other)).outcome is Outcome.THROTTLED
    clock.now += timedelta(minutes=3)
    assert (await online.lookup(config, "van", other)).outcome is Outcome.FOUND
    assert (
        await online.lookup(config, "bus", vector_observation("gt06:94"))
    ).outcome is Outcome.FOUND
    assert len(provider.requests) == 3
    assert (
        await online.lookup(config, "taxi", vector_observation("gt06:91"))
    ).outcome is Outcome.THROTTLED
    assert len(provider.requests) == 3
    # An answer is kept for a week, then asked again.
    clock.now += timedelta(days=8)
    assert (await online.lookup(config, "van", observation)).outcome is Outcome.FOUND
    assert online.diagnostics()["stats"]["requests"] == 4


async def test_nothing_to_ask_is_not_asked(provider: FakeProvider, session: ClientSession) -> None:
    """A single access point and no cell is no request (MLS needs two)."""
    observation = vector_observation("gt06:87")
    lone = Observation((), observation.wifi[:1])
    result = await lookup_for(session, Clock()).lookup(mls(provider), "van", lone)
    assert result.outcome is Outcome.UNASKABLE
    assert provider.requests == []


def error(status: int, reason: str = "", message: str = "") -> Responder:
    body = {
        "error": {
            "errors": [{"domain": "geolocation", "reason": reason, "message": message}],
            "code": status,
            "message": message,
        }
    }
    return lambda _: web.json_response(body, status=status)


ERRORS = {
    "not found": (error(404, "notFound"), Outcome.NOT_FOUND, None, Outcome.NOT_FOUND),
    "coarse fallback": (
        lambda _: web.json_response({**ANSWER, "fallback": "lacf"}),
        Outcome.NOT_FOUND,
        None,
        Outcome.NOT_FOUND,
    ),
    "quota": (error(403, "dailyLimitExceeded"), Outcome.FAILED, Problem.QUOTA, Outcome.BLOCKED),
    "invalid key": (
        error(400, "keyInvalid", "API key not valid"),
        Outcome.FAILED,
        Problem.INVALID_KEY,
        Outcome.BLOCKED,
    ),
    "google denied": (
        error(403, "", "This API project is not authorized"),
        Outcome.FAILED,
        Problem.INVALID_KEY,
        Outcome.BLOCKED,
    ),
    "server error": (
        lambda _: web.Response(status=500, text="oops"),
        Outcome.FAILED,
        None,
        Outcome.BLOCKED,
    ),
    "rate limited": (
        lambda _: web.Response(status=429, headers={"Retry-After": "120"}),
        Outcome.FAILED,
        None,
        Outcome.BLOCKED,
    ),
    "malformed": (
        lambda _: web.Response(text="<html>captive portal</html>"),
        Outcome.FAILED,
        None,
        Outcome.BLOCKED,
    ),
    "no position": (
        lambda _: web.json_response({"location": {"lat": "x"}}),
        Outcome.FAILED,
        None,
        Outcome.BLOCKED,
    ),
    "timeout": (None, Outcome.FAILED, None, Outcome.BLOCKED),
    "parse error": (error(400, "parseError"), Outcome.NOT_FOUND, None, Outcome.NOT_FOUND),
}


@pytest.mark.parametrize("case", list(ERRORS))
async def test_mls_errors(
    provider: FakeProvider, session: ClientSession, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each failure is one request, one log line at most, and a pause or a cached answer."""
    respond, outcome, problem, then = ERRORS[case]
    provider.responses.append(respond or provider.never)
    clock = Clock()
    online = lookup_for(session, clock, timeout=0.5)
    config = mls(provider, "k")
    observation = vector_observation("gt06:14")
    with caplog.at_level(logging.DEBUG):
        result = await online.lookup(config, "van", observation)
        assert (result.outcome, result.estimate, result.problem) == (outcome, None, problem)
        assert online.problem(config) is problem
        for tracker in ("car", "bus", "taxi"):
            again = await online.lookup(config, tracker, observation)
            assert again.outcome is then
            assert again.problem is problem
    assert len(provider.requests) == 1
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 1
    assert "k" not in {w.getMessage() for w in warnings}


async def test_outage_backs_off_then_recovers(
    provider: FakeProvider, session: ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """After an outage: 2 minutes' pause, then doubling; an answer ends it, logged once each."""
    clock = Clock()
    online = lookup_for(session, clock, min_interval=timedelta(0))
    config = mls(provider)
    provider.responses += [lambda _: web.Response(status=503)] * 2
    stations = [vector_observation(v) for v in ("gt06:14", "gt06:101", "gt06:94", "gt06:91")]
    with caplog.at_level(logging.INFO):
        assert (await online.lookup(config, "van", stations[0])).outcome is Outcome.FAILED
        clock.now += timedelta(minutes=3)
        assert (await online.lookup(config, "van", stations[1])).outcome is Outcome.FAILED
        clock.now += timedelta(minutes=3)
        assert (await online.lookup(config, "van", stations[2])).outcome is Outcome.BLOCKED
        clock.now += timedelta(minutes=2)
        assert (await online.lookup(config, "van", stations[2])).outcome is Outcome.FOUND
    assert len(provider.requests) == 3
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("online")]
    assert len([m for m in messages if "unavailable" in m]) == 1
    assert any("answers again" in m for m in messages)


UNWIRED_ERRORS = {
    "no match": ("No matches found", Outcome.NOT_FOUND, None),
    "bad token": ("Invalid token", Outcome.FAILED, Problem.INVALID_KEY),
    "no balance": ("Your balance is exhausted", Outcome.FAILED, Problem.QUOTA),
    "unknown": ("Something odd", Outcome.FAILED, None),
}


@pytest.mark.parametrize("case", list(UNWIRED_ERRORS))
async def test_unwired_errors(provider: FakeProvider, session: ClientSession, case: str) -> None:
    """Unwired Labs answers errors with HTTP 200 and a status; they mean the same things."""
    message, outcome, problem = UNWIRED_ERRORS[case]
    provider.responses.append(
        lambda _: web.json_response({"status": "error", "message": message, "balance": 10})
    )
    online = lookup_for(session, Clock())
    result = await online.lookup(unwired(provider), "van", vector_observation("jt808:16"))
    assert (result.outcome, result.problem) == (outcome, problem)


async def test_quota_waits_for_the_reset(provider: FakeProvider, session: ClientSession) -> None:
    """A spent Unwired Labs balance waits until midnight UTC, then asks again."""
    clock = Clock()
    online = lookup_for(session, clock)
    config = unwired(provider)
    provider.responses.append(
        lambda _: web.json_response(
            {"status": "error", "message": "Daily limit exceeded", "balance": 0}
        )
    )
    observation = vector_observation("jt808:16")
    assert (await online.lookup(config, "van", observation)).problem is Problem.QUOTA
    clock.now = T0.replace(hour=23, minute=59)
    assert (await online.lookup(config, "van", observation)).outcome is Outcome.BLOCKED
    clock.now = T0 + timedelta(days=1, minutes=1)
    assert (await online.lookup(config, "van", observation)).outcome is Outcome.FOUND
    assert online.problem(config) is None
    # A new key is another provider: not held back by the old one's problem.
    assert json.dumps(online.diagnostics())  # JSON-safe, no key inside
    assert "pk.test-token" not in json.dumps(online.diagnostics())
