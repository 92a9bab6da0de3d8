"""The gateway: trackers in through the listener, their devices out to Home Assistant over MQTT.

It joins the three other parts: the listener (sockets, sessions, commands; it holds each reply
to a report until the gateway took the report), a `Tracker` per allowed identity (the state the
device shows), and the broker connection (the outbox, subscriptions, reconnects). It owns what
only the gateway knows: which trackers are allowed, which ones this instance holds (an instance
subscribes to a tracker's commands only while it holds its connection, and lets the tracker go
when another instance claims it), the relay command path, the alarm hold timers, and what a
fresh broker connection or Home Assistant's birth message needs republished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import json
import logging
import random
from typing import Any

from custom_components.tk970.clock import FixTime
from custom_components.tk970.const import DEFAULT_RELAY_MAX_SPEED, RELAY_TIMEOUT
from custom_components.tk970.identity import identity_matches
from custom_components.tk970.listener import (
    CommandEncodeError,
    CommandRejectedError,
    CommandTimeoutError,
    Link,
    Listener,
    NotConnectedError,
)
from custom_components.tk970.positioning import Estimate
from custom_components.tk970.protocol import (
    Command,
    CommandKind,
    CommandResult,
    Message,
    Protocol,
    RelayDialect,
)
from custom_components.tk970.protocol.commands import DEFAULT_DYD_PASSWORD

from .broker import Broker, BrokerSettings
from .discovery import gateway_config, tracker_config
from .outbox import Outbox, Publication
from .positioning import GatewayLocator, Positioning, PositioningSettings
from .topics import Topics
from .tracker import Tracker

_LOGGER = logging.getLogger(__name__)

#: Unknown identities logged one by one at warning level; a flood of made-up identities beyond
#: this is logged at debug level (after one line saying so).
MAX_UNKNOWN_LOGGED = 100


@dataclass(slots=True)
class Settings:
    """What the command line configures."""

    mqtt: BrokerSettings
    port: int = 8888
    hosts: list[str] | None = None
    #: allowed identities and their names (None: "TK970 <id>")
    allow: dict[str, str | None] = field(default_factory=dict)
    accept_all: bool = False
    topics: Topics = field(default_factory=Topics)
    #: report publications kept while the broker is unreachable
    buffer: int = 10_000
    #: trackers kept in memory (with --accept-all, strangers cannot grow it beyond this)
    max_trackers: int = 10_000
    alarm_hold: timedelta = timedelta(minutes=10)
    relay_max_speed: float = DEFAULT_RELAY_MAX_SPEED
    relay_dialect: RelayDialect | None = None
    relay_password: str = DEFAULT_DYD_PASSWORD
    relay_timeout: float = RELAY_TIMEOUT
    #: Home Assistant's birth: republish after a random delay up to this (spreads the load)
    birth_delay: float = 5.0
    stats_interval: float = 60.0
    #: fallback positioning (cells and Wi-Fi); None: off
    positioning: PositioningSettings | None = None


@dataclass(slots=True)
class _Claim:
    """This instance holds a tracker's connection: since when, and over which link."""

    link: Link
    since: datetime


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


class Gateway:
    """One gateway instance."""

    def __init__(
        self, settings: Settings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        """Build the parts; nothing runs until `start`."""
        self.settings = settings
        self.topics = settings.topics
        self._clock = clock
        self.listener = Listener(
            settings.port,
            on_messages=self._on_messages,
            on_link=self._on_link,
            hosts=settings.hosts,
            clock=clock,
            hold_acks=True,
        )
        self.outbox = Outbox(settings.buffer)
        self.broker = Broker(
            settings.mqtt,
            self.outbox,
            status_topic=self.topics.status,
            on_connected=self._on_broker_connected,
            subscriptions=self._subscriptions,
            on_message=self._on_mqtt_message,
        )
        self.trackers: dict[str, Tracker] = {}
        self._claims: dict[str, _Claim] = {}
        #: trackers another instance claimed since: this one publishes nothing more for them
        self._moved: set[str] = set()
        self._routes: dict[str, str | None] = {}
        self._unknown: set[str] = set()
        self._hold_timers: dict[str, asyncio.TimerHandle] = {}
        self._relay_busy: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._broker_task: asyncio.Task[None] | None = None
        self._stats_timer: asyncio.TimerHandle | None = None
        self.positioning = (
            Positioning(settings.positioning) if settings.positioning is not None else None
        )
        self._locators: dict[str, GatewayLocator] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the tracker port and start connecting to the broker."""
        if self.positioning is not None:
            await self.positioning.start()
        await self.listener.start()
        self._broker_task = asyncio.create_task(self.broker.run())
        self._stats_timer = asyncio.get_running_loop().call_later(
            self.settings.stats_interval, self._publish_stats
        )
        _LOGGER.info(
            "Gateway %s: trackers on port %s, broker %s:%s, %s",
            self.topics.instance,
            self.settings.port,
            self.settings.mqtt.host,
            self.settings.mqtt.port,
            "every tracker accepted"
            if self.settings.accept_all
            else f"{len(self.settings.allow)} tracker(s) allowed",
        )

    async def stop(self) -> None:
        """Close the port, tell Home Assistant this instance is offline, disconnect."""
        if self._stats_timer is not None:
            self._stats_timer.cancel()
        for timer in self._hold_timers.values():
            timer.cancel()
        self._hold_timers.clear()
        await self.listener.stop()
        for task in list(self._tasks):
            task.cancel()
        last = [Publication(self.topics.status, b"offline", retain=True)]
        last += [
            Publication(self.topics.availability(tid), b"offline", retain=True)
            for tid in self._claims
        ]
        await self.broker.stop(last)
        if self._broker_task is not None:
            try:
                async with asyncio.timeout(10):
                    await self._broker_task
            except TimeoutError:
                self._broker_task.cancel()
        if self.positioning is not None:
            await self.positioning.close()

    # -- which tracker a report is ------------------------------------------------------------

    def _route(self, link: Link) -> str | None:
        """The tracker id for a reported identity, or None when it is not allowed."""
        reported = link.identity
        if reported in self._routes:
            return self._routes[reported]
        tid: str | None = next(
            (c for c in self.settings.allow if identity_matches(reported, link.protocol, c)), None
        )
        if tid is None and self.settings.accept_all:
            tid = reported
        if len(self._routes) > 4 * self.settings.max_trackers:
            self._routes.clear()  # bounded under a flood of made-up identities
        self._routes[reported] = tid
        if tid is None and reported not in self._unknown:
            self._log_unknown(reported, link)
        return tid

    def _log_unknown(self, reported: str, link: Link) -> None:
        """Log each unknown identity once; past a bound, one line says the rest are not."""
        self._unknown.add(reported)
        if len(self._unknown) <= MAX_UNKNOWN_LOGGED:
            _LOGGER.warning(
                "Tracker %s (%s) from %s is not allowed: not published (add --allow %s)",
                reported,
                link.protocol.value,
                link.host,
                reported,
            )
        elif len(self._unknown) == MAX_UNKNOWN_LOGGED + 1:
            _LOGGER.warning(
                "More than %d unknown trackers: further ones are logged at debug level only",
                MAX_UNKNOWN_LOGGED,
            )
        else:
            _LOGGER.debug("Tracker %s from %s is not allowed", reported, link.host)
        if len(self._unknown) > 4 * self.settings.max_trackers:
            self._unknown.clear()  # bounded; a flood then logs one more summary line

    def _tracker(self, tid: str) -> Tracker | None:
        tracker = self.trackers.get(tid)
        if tracker is not None:
            return tracker
        if len(self.trackers) >= self.settings.max_trackers and not self._evict():
            _LOGGER.warning("Tracker %s not published: %d trackers held", tid, len(self.trackers))
            return None
        name = self.settings.allow.get(tid) or f"TK970 {tid}"
        tracker = self.trackers[tid] = Tracker(tid, name, hold=self.settings.alarm_hold)
        return tracker

    def _evict(self) -> bool:
        """Forget the least recently seen tracker that is not connected here."""
        idle = [t for tid, t in self.trackers.items() if tid not in self._claims]
        if not idle:
            return False
        oldest = min(idle, key=lambda t: t.last_seen or datetime.min.replace(tzinfo=UTC))
        del self.trackers[oldest.identity]
        self._locators.pop(oldest.identity, None)
        self._moved.discard(oldest.identity)
        if (timer := self._hold_timers.pop(oldest.identity, None)) is not None:
            timer.cancel()
        return True

    # -- from the listener --------------------------------------------------------------------

    def _on_link(self, link: Link, connected: bool) -> None:
        tid = self._route(link)
        if tid is None:
            return
        claim = self._claims.get(tid)
        if connected:
            self._claim(tid, link)
        elif claim is not None and claim.link.identity == link.identity:
            # The listener says this only when the identity has no session left (a new session
            # of the same tracker is announced with `connected` True, never by dropping the old).
            self._release(tid)
            self._put(Publication(self.topics.availability(tid), b"offline", retain=True))
            tracker = self.trackers.get(tid)
            if tracker is not None and tracker.settle_last_seen():
                self._put_state(tracker)

    def _on_messages(self, link: Link, messages: list[Message]) -> bool:
        tid = self._route(link)
        if tid is None:
            return True  # answered, as the integration answers trackers it does not know
        needed = 1 + sum(len(message.alarms) for message in messages)
        if not self.outbox.room_for(needed):
            self.outbox.refuse()
            _LOGGER.debug("Buffer full: report from %s not accepted (not acknowledged)", tid)
            return False
        tracker = self._tracker(tid)
        if tracker is None:
            return True
        claim = self._claims.get(tid)
        if claim is None:
            self._claim(tid, link)
        elif claim.link is not link:
            claim.link = link
        now = self._clock()
        locator = self._locator(tracker)
        jt808_offset = None
        if link.protocol is Protocol.JT808:
            # A session that learned nothing yet starts from what earlier sessions learned.
            context = link.session.context
            jt808_offset = tracker.rules.session_offset(context.jt808_utc_offset)
            context.jt808_utc_offset = jt808_offset
        applied = tracker.apply(
            messages,
            link.identity,
            now,
            locate=locator.handle if locator is not None else None,
            jt808_utc_offset=jt808_offset,
        )
        if applied.device_changed:
            self._put(self._discovery(tracker))
        self._put_state(tracker)
        for event in applied.events:
            payload: dict[str, Any] = {
                "event_type": event.alarm.value,
                "protocol": event.protocol.value,
            }
            if event.time is not None:
                payload["alarm_time"] = event.time.isoformat()
            self._put(Publication(self.topics.alarm(tid), _json(payload), report=True))
        self._arm_hold(tracker)
        return True

    def _locator(self, tracker: Tracker) -> GatewayLocator | None:
        """The tracker's fallback positioning, if it is on."""
        if self.positioning is None:
            return None
        locator = self._locators.get(tracker.identity)
        if locator is None:

            def show(estimate: Estimate, fix: FixTime) -> None:
                self._position_resolved(tracker, estimate, fix)

            locator = self._locators[tracker.identity] = self.positioning.locator(
                tracker.identity, show
            )
        return locator

    def _position_resolved(self, tracker: Tracker, estimate: Estimate, fix: FixTime) -> None:
        """A fallback position arrived after its report was handled (online provider)."""
        if tracker.identity in self._moved or self.trackers.get(tracker.identity) is not tracker:
            return  # another instance holds it now, or it was forgotten
        if tracker.show_fallback(estimate, fix):
            self._put_state(tracker)

    # -- holding trackers ---------------------------------------------------------------------

    def _claim(self, tid: str, link: Link) -> None:
        """This instance now holds the tracker: take its commands, tell the others."""
        tracker = self._tracker(tid)
        if tracker is None:
            return
        claim = self._claims.get(tid)
        if claim is not None:
            claim.link = link  # the same tracker on a new connection: commands go there now
            return
        since = self._clock()
        self._claims[tid] = _Claim(link, since)
        self._moved.discard(tid)
        if tracker.protocol is None:
            tracker.protocol = link.protocol  # the model string in the first discovery
        self.broker.subscribe(self._tracker_subscriptions(tracker))
        self._put(self._discovery(tracker))
        self._put(Publication(self.topics.availability(tid), b"online", retain=True))
        self._put(self._owner(tid, since))

    def _release(self, tid: str) -> None:
        """Let the tracker go (its connection closed, or another instance holds it now)."""
        if self._claims.pop(tid, None) is None:
            return
        topics = [self.topics.control(tid)]
        tracker = self.trackers.get(tid)
        if tracker is not None and not tracker.seeded:
            topics.append(self.topics.state(tid))
        self.broker.unsubscribe(topics)

    def _tracker_subscriptions(self, tracker: Tracker) -> list[str]:
        topics = [self.topics.control(tracker.identity)]
        if not tracker.seeded:
            topics.append(self.topics.state(tracker.identity))  # read back its retained state
        return topics

    def _owner(self, tid: str, since: datetime) -> Publication:
        payload = {"instance": self.topics.instance, "since": since.isoformat()}
        return Publication(self.topics.owner(tid), _json(payload), retain=True)

    def _discovery(self, tracker: Tracker) -> Publication:
        config = tracker_config(tracker, self.topics)
        return Publication(self.topics.device_config(tracker.identity), _json(config), retain=True)

    # -- publishing -----------------------------------------------------------------------------

    def _put(self, publication: Publication) -> None:
        self.outbox.put(publication)
        self.broker.wake()

    def _put_state(self, tracker: Tracker) -> None:
        self._put(
            Publication(
                self.topics.state(tracker.identity),
                _json(tracker.snapshot()),
                retain=True,
                report=True,
            )
        )

    def _on_broker_connected(self) -> list[Publication]:
        """What a fresh connection publishes before the buffered reports, in this order."""
        topics = self.topics
        first = [
            Publication(topics.status, b"online", retain=True),
            Publication(topics.gateway_config, _json(gateway_config(topics)), retain=True),
        ]
        first += self._owned_control()
        # After the buffered reports: each held tracker's current state (the broker may have
        # lost its retained copy).
        for tid in self._claims:
            self._put_state(self.trackers[tid])
        self._publish_stats(reschedule=False)
        return first

    def _owned_control(self) -> list[Publication]:
        out: list[Publication] = []
        for tid, claim in self._claims.items():
            out.append(self._discovery(self.trackers[tid]))
            out.append(Publication(self.topics.availability(tid), b"online", retain=True))
            out.append(self._owner(tid, claim.since))
        return out

    def _subscriptions(self) -> list[str]:
        topics = [self.topics.birth]
        for tid in self._claims:
            topics += self._tracker_subscriptions(self.trackers[tid])
        return topics

    def _publish_stats(self, *, reschedule: bool = True) -> None:
        stats = {
            "trackers": len(self._claims),
            "connections": self.listener.connection_count,
            "buffered": self.outbox.reports,
            "dropped": self.outbox.stats.refused,
            "published": self.outbox.stats.published,
            "reports_published": self.outbox.stats.reports_published,
            "messages": self.listener.stats.messages,
        }
        # Ahead of any backlog: counters read late are wrong counters.
        self.outbox.put_first([Publication(self.topics.stats, _json(stats), retain=True)])
        self.broker.wake()
        if reschedule:
            self._stats_timer = asyncio.get_running_loop().call_later(
                self.settings.stats_interval, self._publish_stats
            )

    # -- from the broker ----------------------------------------------------------------------

    def _on_mqtt_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self.topics.birth:
            if payload == b"online":
                self._spawn(self._republish_after_birth())
            return
        parsed = self.topics.parse(topic)
        if parsed is None:
            return
        tid, leaf = parsed
        if leaf == "relay":
            if retained:
                # A retained command would fire on every reconnect: never act on one.
                _LOGGER.warning("Ignoring a retained relay command on %s", topic)
                return
            if tid in self._claims:
                self._spawn(self._relay(tid, payload))
        elif leaf == "owner":
            self._owner_claimed(tid, payload)
        elif leaf == "state":
            # A retained copy is the state published before (here or elsewhere). Our own
            # publication echoed back means none came first: the broker sends retained
            # messages when it subscribes us, before anything we publish after that.
            self._seed(tid, payload if retained else None)

    def _owner_claimed(self, tid: str, payload: bytes) -> None:
        claim = self._claims.get(tid)
        if claim is None:
            return
        try:
            data = json.loads(payload)
            instance = str(data["instance"])
            since = datetime.fromisoformat(data["since"])
        except (ValueError, KeyError, TypeError):
            return
        if instance == self.topics.instance:
            return
        if (since, instance) > (claim.since, self.topics.instance):
            _LOGGER.info("Tracker %s is now held by gateway %s", tid, instance)
            self._release(tid)
            self._moved.add(tid)

    def _seed(self, tid: str, payload: bytes | None) -> None:
        tracker = self.trackers.get(tid)
        if tracker is None or tracker.seeded:
            return
        self.broker.unsubscribe([self.topics.state(tid)])
        try:
            saved = json.loads(payload) if payload else None
        except ValueError:
            saved = None
        if not isinstance(saved, dict):
            tracker.seeded = True
            return
        if tracker.seed(saved, self._clock()):
            self._put_state(tracker)
            self._arm_hold(tracker)

    async def _republish_after_birth(self) -> None:
        """Home Assistant (re)started: send discovery, availability and state again."""
        await asyncio.sleep(random.uniform(0, self.settings.birth_delay))  # noqa: S311
        for publication in self._owned_control():
            self._put(publication)
        for tid in self._claims:
            self._put_state(self.trackers[tid])

    # -- the relay ------------------------------------------------------------------------------

    async def _relay(self, tid: str, payload: bytes) -> None:
        """Send a relay command from Home Assistant; the state changes only when confirmed."""
        wanted = {b"ON": True, b"OFF": False}.get(payload.strip().upper())
        command_name = {True: "cut", False: "restore", None: None}[wanted]
        tracker = self.trackers[tid]
        outcome: str = "invalid"
        reason: str | None = payload[:32].decode("utf-8", "replace")
        if wanted is not None:
            outcome, reason = await self._relay_outcome(tracker, wanted)
        event: dict[str, Any] = {"event_type": outcome}
        if command_name:
            event["command"] = command_name
        if reason:
            event["reason"] = reason
        log = _LOGGER.info if outcome == "confirmed" else _LOGGER.warning
        log("Tracker %s: relay %s: %s %s", tid, command_name, outcome, reason or "")
        self._put(Publication(self.topics.relay_command(tid), _json(event)))

    async def _relay_outcome(self, tracker: Tracker, engage: bool) -> tuple[str, str | None]:
        tid = tracker.identity
        claim = self._claims.get(tid)
        if claim is None:
            return "not_connected", None
        if tid in self._relay_busy:
            return "busy", None
        speed = tracker.state.speed_kmh
        limit = self.settings.relay_max_speed
        if engage and limit and isinstance(speed, int | float) and speed > limit:
            return "too_fast", f"{speed:.0f} km/h, limit {limit:g} km/h"
        command = Command(
            kind=CommandKind.RELAY_CUT if engage else CommandKind.RELAY_RESTORE,
            dialect=self.settings.relay_dialect,
            password=self.settings.relay_password,
        )
        self._relay_busy.add(tid)
        reports_before = tracker.relay_reports
        try:
            answer = await self.listener.send_command(
                claim.link.identity, command, answer_timeout=self.settings.relay_timeout
            )
        except NotConnectedError:
            return "not_connected", None
        except CommandTimeoutError:
            return "no_answer", f"no answer within {self.settings.relay_timeout:g} s"
        except CommandEncodeError as err:
            return "unsupported", str(err)
        except CommandRejectedError as err:
            unsupported = err.outcome.result is CommandResult.UNSUPPORTED
            return ("unsupported" if unsupported else "refused"), str(err)
        finally:
            self._relay_busy.discard(tid)
        if answer is None:
            protocol = tracker.protocol or Protocol.GPS103
            return "unconfirmable", f"{protocol.value} devices never confirm commands"
        tracker.relay_confirmed(
            answer.relay if answer.relay is not None else engage, reports_before
        )
        self._put_state(tracker)
        return "confirmed", answer.text

    # -- alarm hold timers ----------------------------------------------------------------------

    def _arm_hold(self, tracker: Tracker) -> None:
        tid = tracker.identity
        if (timer := self._hold_timers.pop(tid, None)) is not None:
            timer.cancel()
        expiry = tracker.next_expiry
        if expiry is None:
            return
        delay = max(0.0, (expiry - self._clock()).total_seconds())
        self._hold_timers[tid] = asyncio.get_running_loop().call_later(
            delay, self._hold_expired, tracker
        )

    def _hold_expired(self, tracker: Tracker) -> None:
        self._hold_timers.pop(tracker.identity, None)
        if self.trackers.get(tracker.identity) is not tracker or tracker.identity in self._moved:
            return  # forgotten, or another instance holds it now and expires its alarms
        if tracker.expire(self._clock()):
            self._put_state(tracker)
        self._arm_hold(tracker)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
