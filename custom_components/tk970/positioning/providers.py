"""Online geolocation providers: the request each one wants and what its answers mean.

Two formats (`research/geolocation.md` §1-2):

* **MLS** `v1/geolocate`: BeaconDB (no key; the default URL), Google (key in the `key` query
  parameter), or any self-hosted Ichnaea-compatible service. `considerIp` and the IP and
  area fallbacks are always off: a server-side lookup would otherwise place the tracker at the
  Home Assistant host's address, or somewhere in a 100 km area, and call it an answer.
* **Unwired Labs** LocationAPI (`v2/process`), token in the body, errors as `status: error`.

Each request carries at most the serving cell first and the report's other cells, and Wi-Fi
access points only when there are at least two (MLS's privacy rule; Google needs two too).
`query()` makes one request on the session it is given and returns an `Estimate`, or raises
one of the `ProviderError`s below, which tell the caller what to do next: cache a "not found",
stop and ask the user for a key, wait for the quota, or back off after an outage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
import hashlib
import json
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from .estimate import Estimate, Kind, Method
from .observations import Observation

if TYPE_CHECKING:
    import aiohttp

#: BeaconDB's geolocate endpoint (no key; the service asks clients to name themselves).
BEACONDB_URL = "https://api.beacondb.net/v1/geolocate"
UNWIREDLABS_URL = "https://us1.unwiredlabs.com/v2/process"
#: Answers larger than this are not geolocation answers.
MAX_BODY = 64 * 1024
#: Unwired Labs takes one to seven cells.
MAX_UNWIRED_CELLS = 7
#: Wi-Fi signals below this make BeaconDB skip the access point: sent without one.
MIN_WIFI_DBM = -100
#: An answer this coarse did not come from Wi-Fi.
MAX_WIFI_ANSWER_M = 500
#: Waiting times when a provider does not say how long.
DEFAULT_RATE_LIMIT = timedelta(hours=1)
_PACIFIC = ZoneInfo("America/Los_Angeles")


class ProviderKind(StrEnum):
    """The request format (option `geolocation_provider`)."""

    MLS = "mls"
    UNWIREDLABS = "unwiredlabs"


DEFAULT_URLS = {ProviderKind.MLS: BEACONDB_URL, ProviderKind.UNWIREDLABS: UNWIREDLABS_URL}


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One provider as a tracker's options name it."""

    kind: ProviderKind
    url: str
    key: str | None = None

    @property
    def host(self) -> str:
        """The provider's host name (shown as the position's provider, in logs and repairs)."""
        return urlsplit(self.url).hostname or self.url

    @property
    def ident(self) -> str:
        """Identifies the provider and key for caching and back-off, without revealing the key."""
        digest = hashlib.sha256((self.key or "").encode()).hexdigest()[:12]
        return f"{self.kind}|{self.url}|{digest}"


class ProviderError(Exception):
    """A request did not give a position."""


class NotFoundError(ProviderError):
    """The provider knows none of the stations (or only had a coarse fallback to offer)."""


class RequestRejectedError(ProviderError):
    """The provider refused this request's content (a format problem: do not resend it)."""


class InvalidKeyError(ProviderError):
    """The key or token is missing, wrong or not allowed to use the API."""


class QuotaError(ProviderError):
    """The key's quota is spent."""

    def __init__(self, message: str, retry_at: datetime) -> None:
        """`retry_at`: when the quota resets."""
        super().__init__(message)
        self.retry_at = retry_at


class RateLimitedError(ProviderError):
    """Too many requests for now."""

    def __init__(self, message: str, retry_at: datetime) -> None:
        """`retry_at`: when to try again."""
        super().__init__(message)
        self.retry_at = retry_at


class UnavailableError(ProviderError):
    """Outage, timeout, network error or an answer that makes no sense: try again later."""


def mls_body(observation: Observation) -> dict[str, Any]:
    """The `v1/geolocate` request body for a report."""
    body: dict[str, Any] = {"considerIp": False, "fallbacks": {"lacf": False, "ipf": False}}
    towers = []
    for cell in observation.cells:
        mcc, mnc, lac, cid = cell.key
        tower: dict[str, Any] = {
            "radioType": cell.radio,
            "mobileCountryCode": mcc,
            "mobileNetworkCode": mnc,
            "locationAreaCode": lac,
            "cellId": cid,
        }
        if cell.signal is not None:
            tower["signalStrength"] = cell.signal
        towers.append(tower)
    if towers:
        body["cellTowers"] = towers
    if len(observation.wifi) >= 2:
        points = []
        for access_point in observation.wifi:
            point: dict[str, Any] = {"macAddress": access_point.mac.upper()}
            if _usable_wifi_signal(access_point.signal):
                point["signalStrength"] = access_point.signal
            points.append(point)
        body["wifiAccessPoints"] = points
    return body


def unwired_body(observation: Observation, token: str) -> dict[str, Any]:
    """The Unwired Labs `v2/process` request body for a report."""
    body: dict[str, Any] = {"token": token, "fallbacks": {"ipf": 0, "lacf": 0}, "address": 0}
    cells = observation.cells[:MAX_UNWIRED_CELLS]
    if cells:
        serving = cells[0]
        body["radio"] = _unwired_radio(serving.radio)
        body["mcc"], body["mnc"] = serving.key[0], serving.key[1]
        entries = []
        for cell in cells:
            mcc, mnc, lac, cid = cell.key
            entry: dict[str, Any] = {
                "radio": _unwired_radio(cell.radio),
                "mcc": mcc,
                "mnc": mnc,
                "lac": lac,
                "cid": cid,
            }
            if cell.signal is not None:
                entry["signal"] = cell.signal
            entries.append(entry)
        body["cells"] = entries
    if len(observation.wifi) >= 2:
        body["wifi"] = [
            {"bssid": w.mac, "signal": w.signal}
            if _usable_wifi_signal(w.signal)
            else {"bssid": w.mac}
            for w in observation.wifi
        ]
    return body


def _usable_wifi_signal(signal: int | None) -> bool:
    return signal is not None and MIN_WIFI_DBM <= signal < 0


def _unwired_radio(radio: str) -> str:
    # Unwired Labs documents gsm, cdma, umts and lte; an NR guess goes as lte.
    return "lte" if radio == "nr" else radio


def can_ask(observation: Observation) -> bool:
    """Whether a request could find anything: a cell, or two access points."""
    return bool(observation.cells) or len(observation.wifi) >= 2


async def query(
    session: aiohttp.ClientSession,
    config: ProviderConfig,
    observation: Observation,
    *,
    timeout: float,  # noqa: ASYNC109 - a per-request limit handed to aiohttp
    user_agent: str,
    now: datetime,
) -> Estimate:
    """Ask the provider once; return its estimate or raise a `ProviderError`."""
    import aiohttp  # noqa: PLC0415 - only the online path needs it

    params: dict[str, str] = {}
    if config.kind is ProviderKind.MLS:
        body = mls_body(observation)
        if config.key:
            params["key"] = config.key
    else:
        body = unwired_body(observation, config.key or "")
    try:
        async with session.post(
            config.url,
            json=body,
            params=params,
            headers={"User-Agent": user_agent},
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            raw = await response.content.read(MAX_BODY + 1)
            status = response.status
            retry_after = response.headers.get("Retry-After")
    except TimeoutError as err:
        raise UnavailableError(f"no answer within {timeout:.0f} s") from err
    except aiohttp.ClientError as err:
        raise UnavailableError(f"request failed: {err}") from err
    if len(raw) > MAX_BODY:
        raise UnavailableError("answer too large")
    data = _json(raw)
    if config.kind is ProviderKind.UNWIREDLABS:
        lat, lon, accuracy = _unwired_answer(status, data, retry_after, now)
    else:
        lat, lon, accuracy = _mls_answer(status, data, retry_after, now)
    kind = Kind.WIFI if len(observation.wifi) >= 2 and accuracy <= MAX_WIFI_ANSWER_M else Kind.LBS
    if kind is Kind.LBS and not observation.cells:
        kind = Kind.WIFI
    return Estimate(
        latitude=lat,
        longitude=lon,
        accuracy=accuracy,
        kind=kind,
        method=Method.ONLINE,
        provider=config.host,
        attribution=f"Position: {config.host}",
        stations=len(observation.cells) + len(observation.wifi),
    )


def _json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _mls_answer(
    status: int, data: object, retry_after: str | None, now: datetime
) -> tuple[float, float, int]:
    """Read a `v1/geolocate` answer: (lat, lon, accuracy) or a `ProviderError`."""
    if status == 200:
        if not isinstance(data, dict):
            raise UnavailableError("answer is not JSON")
        if "fallback" in data:
            raise NotFoundError(f"only a coarse {data['fallback']} fallback")
        location = data.get("location")
        if not isinstance(location, dict):
            raise UnavailableError("answer has no location")
        return _position(location.get("lat"), location.get("lng"), data.get("accuracy"))
    reason, message = _mls_error(data)
    if status == 404:
        raise NotFoundError(message or "not found")
    if status == 400:
        if reason == "keyinvalid":
            raise InvalidKeyError(message or "key invalid")
        raise RequestRejectedError(message or f"rejected ({reason or 'HTTP 400'})")
    if status == 401:
        raise InvalidKeyError(message or "unauthorized")
    if status == 403:
        if reason == "userratelimitexceeded":
            raise RateLimitedError(message or "rate limit", _retry_at(retry_after, now, None))
        if "limit" in reason or "quota" in reason:
            raise QuotaError(
                message or "daily limit exceeded",
                _retry_at(retry_after, now, _next_midnight(now, _PACIFIC)),
            )
        raise InvalidKeyError(message or f"forbidden ({reason or 'HTTP 403'})")
    if status == 429:
        raise RateLimitedError(message or "too many requests", _retry_at(retry_after, now, None))
    raise UnavailableError(f"HTTP {status}" + (f": {message}" if message else ""))


def _mls_error(data: object) -> tuple[str, str]:
    """(reason in lower case, message) from an MLS/Google error body; empty when absent."""
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return "", ""
    error = data["error"]
    message = str(error.get("message") or "")[:200]
    errors = error.get("errors")
    reason = ""
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        reason = str(errors[0].get("reason") or "")
    reason = reason or str(error.get("status") or "")
    return reason.lower(), message


def _unwired_answer(
    status: int, data: object, retry_after: str | None, now: datetime
) -> tuple[float, float, int]:
    """Read a `v2/process` answer: (lat, lon, accuracy) or a `ProviderError`."""
    if status != 200 and not (isinstance(data, dict) and data.get("status") == "error"):
        return _mls_answer(status, None, retry_after, now)  # the same HTTP meanings
    if not isinstance(data, dict):
        raise UnavailableError("answer is not JSON")
    if data.get("status") == "ok":
        if data.get("fallback"):
            raise NotFoundError(f"only a coarse {data['fallback']} fallback")
        return _position(data.get("lat"), data.get("lon"), data.get("accuracy"))
    message = str(data.get("message") or "")[:200]
    text = message.lower()
    if "no match" in text or "not found" in text:
        raise NotFoundError(message)
    if "token" in text or "key" in text or "unauthori" in text or "denied" in text:
        raise InvalidKeyError(message)
    if any(word in text for word in ("balance", "quota", "limit", "exceeded", "credit")) or (
        data.get("balance") == 0
    ):
        raise QuotaError(message or "balance exhausted", _next_midnight(now, UTC))
    if "invalid" in text or "malformed" in text or "parse" in text:
        raise RequestRejectedError(message)
    raise UnavailableError(message or f"status {data.get('status')!r}")


def _position(lat: object, lon: object, accuracy: object) -> tuple[float, float, int]:
    numbers = (lat, lon, accuracy)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        raise UnavailableError("answer without a usable position")
    latitude, longitude, radius = (float(v) for v in numbers)  # type: ignore[arg-type]
    if not all(math.isfinite(v) for v in (latitude, longitude, radius)):
        raise UnavailableError("answer without a usable position")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180) or radius <= 0:
        raise UnavailableError("answer without a usable position")
    return latitude, longitude, max(1, math.ceil(radius))


def _retry_at(header: str | None, now: datetime, default: datetime | None) -> datetime:
    """When to try again: `Retry-After` (seconds), else `default`, else an hour from now."""
    if header is not None:
        try:
            seconds = float(header)
        except ValueError:
            pass
        else:
            if 0 <= seconds <= 7 * 86_400:
                return now + timedelta(seconds=seconds)
    return default or now + DEFAULT_RATE_LIMIT


def _next_midnight(now: datetime, zone: Any) -> datetime:
    """The next midnight in a time zone (when daily quotas reset), in UTC."""
    local = now.astimezone(zone)
    tomorrow = (local + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=zone).astimezone(UTC)
