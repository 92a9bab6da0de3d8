"""The MQTT connection: connect, keep the outbox flowing, subscribe, reconnect; aiomqtt does MQTT.

One supervisor task owns the connection. On every connect it asks the gateway for what a fresh
connection needs (status, discovery, availability: put ahead of the buffered reports) and for
the topics to subscribe; then it sends the outbox in order with a window of publications in
flight, hands incoming messages to the gateway, and on any failure (broker gone, a publish not
confirmed in time) drops the connection, puts everything unconfirmed back in order, and tries
again with a capped exponential back-off. The instance's status topic is its last will
(`offline`, retained), and a clean stop publishes `offline` itself: a will is not sent on a
clean disconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
import logging
import ssl

import aiomqtt

from .outbox import Outbox, Publication

_LOGGER = logging.getLogger(__name__)

#: Publications in flight at once (sent, PUBACK not yet received). Wide enough to keep the broker
#: busy while the event loop also serves thousands of trackers (a round trip takes a few loop
#: turns), narrow because aiomqtt and paho spend time linear in the window on every publish
#: (bench/gateway.py: 128 beat both 32 and 512).
WINDOW = 128
#: How long a publish may wait for its PUBACK before the connection is considered broken.
PUBLISH_TIMEOUT = 30.0


@dataclass(slots=True)
class BrokerSettings:
    """Where the broker is and how to log in."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    client_id: str = "tk970-gateway"
    keepalive: int = 60
    #: back-off between connection attempts: first and longest wait, in seconds
    retry_min: float = 1.0
    retry_max: float = 30.0

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context for `mqtts://`, or None for plain MQTT."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class Broker:
    """Keep one MQTT connection up and the outbox flowing through it."""

    def __init__(
        self,
        settings: BrokerSettings,
        outbox: Outbox,
        *,
        status_topic: str,
        on_connected: Callable[[], list[Publication]],
        subscriptions: Callable[[], list[str]],
        on_message: Callable[[str, bytes, bool], None],
    ) -> None:
        """Configure; nothing connects until `run`."""
        self.settings = settings
        self.outbox = outbox
        self._status_topic = status_topic
        self._on_connected = on_connected
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._client: aiomqtt.Client | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._broken: asyncio.Event = asyncio.Event()
        self._pending_subscribe: list[str] = []
        self._pending_unsubscribe: list[str] = []
        self._flush_scheduled = False
        self._failures = 0
        self.connects = 0

    @property
    def connected(self) -> bool:
        """Tell whether a connection to the broker is up."""
        return self._client is not None

    def wake(self) -> None:
        """Something was queued in the outbox."""
        self._wake.set()

    # -- subscriptions ------------------------------------------------------------------------

    def subscribe(self, topics: list[str]) -> None:
        """Subscribe (QoS 1) now if connected; a reconnect subscribes from `subscriptions()`."""
        if self._client is not None and topics:
            self._pending_subscribe.extend(topics)
            self._schedule_flush()

    def unsubscribe(self, topics: list[str]) -> None:
        """Unsubscribe now if connected (a reconnect starts without them anyway)."""
        if self._client is not None and topics:
            self._pending_unsubscribe.extend(topics)
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        # Batched per loop iteration: a thousand trackers connecting at once make one packet.
        # It runs before the sender wakes for publications queued in the same iteration, so a
        # subscription is at the broker before a publication that depends on it.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_subscriptions)

    def _flush_subscriptions(self) -> None:
        self._flush_scheduled = False
        client = self._client
        subscribe, self._pending_subscribe = self._pending_subscribe, []
        unsubscribe, self._pending_unsubscribe = self._pending_unsubscribe, []
        if client is None:
            return
        loop = asyncio.get_running_loop()
        # Eager: the SUBSCRIBE packet is queued now, ahead of publications queued after it.
        if unsubscribe:
            self._track(
                asyncio.eager_task_factory(loop, self._call(client.unsubscribe(unsubscribe)))
            )
        if subscribe:
            topics = [(topic, 1) for topic in dict.fromkeys(subscribe)]
            self._track(asyncio.eager_task_factory(loop, self._call(client.subscribe(topics))))

    async def _call(self, call: object) -> None:
        try:
            await call  # type: ignore[misc]
        except aiomqtt.MqttError as err:
            _LOGGER.debug("Subscription change failed (the reconnect redoes it): %s", err)
            self._broken.set()

    def _track(self, task: asyncio.Task[None]) -> None:
        if not task.done():
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    # -- the connection -----------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until `stop`: connect, serve, and after a failure wait and retry."""
        delay = self.settings.retry_min
        while not self._stopping.is_set():
            try:
                await self._session()
                delay = self.settings.retry_min
            except aiomqtt.MqttError as err:
                self._failures += 1
                log = _LOGGER.warning if self._failures == 1 else _LOGGER.debug
                log(
                    "MQTT broker %s:%s unreachable (%s); retrying, %d reports buffered",
                    self.settings.host,
                    self.settings.port,
                    err,
                    self.outbox.reports,
                )
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            delay = min(delay * 2, self.settings.retry_max)

    async def _session(self) -> None:
        settings = self.settings
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            identifier=settings.client_id,
            clean_session=True,  # a relay command must never wait in a session for later
            keepalive=settings.keepalive,
            will=aiomqtt.Will(self._status_topic, b"offline", qos=1, retain=True),
            tls_context=settings.tls_context(),
            max_inflight_messages=WINDOW,
            timeout=PUBLISH_TIMEOUT,
        )
        # aiomqtt warns from 10 unconfirmed calls on, subscriptions and publications together.
        # Publications are held to the window; subscriptions come at most one call per
        # event-loop turn while trackers connect, and share the window (the sender waits while
        # they are pending). Thousands of trackers connecting at once briefly have a few hundred
        # calls pending (305 in bench/gateway.py at 5,000 trackers, each warned about at
        # 2 x WINDOW); more than this means the broker has stopped answering.
        client.pending_calls_threshold = 4 * WINDOW
        async with client:
            if self._failures:
                _LOGGER.warning("MQTT broker %s:%s reachable again", settings.host, settings.port)
            self._failures = 0
            self.connects += 1
            self._broken.clear()
            self._client = client
            self.outbox.connected = True
            try:
                self.outbox.put_first(self._on_connected())
                topics = self._subscriptions()
                if topics:
                    await client.subscribe([(topic, 1) for topic in dict.fromkeys(topics)])
                await self._serve(client)
            finally:
                self._client = None
                self.outbox.connection_lost()
                for task in list(self._inflight):
                    task.cancel()
                self._inflight.clear()

    async def _serve(self, client: aiomqtt.Client) -> None:
        reader = asyncio.create_task(self._read(client))
        sender = asyncio.create_task(self._send(client))
        broken = asyncio.create_task(self._broken.wait())
        stopping = asyncio.create_task(self._stopping.wait())
        tasks = {reader, sender, broken, stopping}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
        for task in done & {reader, sender}:
            task.result()  # raises the MqttError that ended the session
        if broken in done:
            raise aiomqtt.MqttError("a publication or subscription was not confirmed")

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload).encode()
            try:
                self._on_message(str(message.topic), data, bool(message.retain))
            except Exception:
                _LOGGER.exception("Error handling an MQTT message on %s", message.topic)

    async def _send(self, client: aiomqtt.Client) -> None:
        outbox = self.outbox
        while True:
            while len(self._inflight) < WINDOW:
                publication = outbox.next_unsent()
                if publication is None:
                    break
                task = asyncio.eager_task_factory(
                    asyncio.get_running_loop(), self._publish(client, publication)
                )
                self._track(task)
            self._wake.clear()
            await self._wake.wait()

    async def _publish(self, client: aiomqtt.Client, publication: Publication) -> None:
        try:
            await client.publish(
                publication.topic,
                publication.payload,
                qos=publication.qos,
                retain=publication.retain,
            )
        except aiomqtt.MqttError as err:
            _LOGGER.debug("Publish to %s failed: %s", publication.topic, err)
            self._broken.set()
            return
        self.outbox.confirmed(publication)
        task = asyncio.current_task()
        if task is not None:
            self._inflight.discard(task)  # room in the window now, not after the done callbacks
        self._wake.set()

    async def stop(self, last: list[Publication]) -> None:
        """Publish `last` (the instance going offline) if connected, then disconnect."""
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(5):
                    for publication in last:
                        await client.publish(
                            publication.topic,
                            publication.payload,
                            qos=publication.qos,
                            retain=publication.retain,
                        )
        self._stopping.set()
