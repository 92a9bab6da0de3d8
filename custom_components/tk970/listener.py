"""Transport: the TCP server and UDP endpoint on one port, a protocol session per peer, commands.

asyncio only, no Home Assistant import. Bytes from a socket go into a `protocol.Session`; the
replies it returns are written at once (devices retransmit or hang up without them); decoded
messages with an identity go to `on_messages`, one call per read and identity, in order. This
module owns every socket, timer and limit: connection count, UDP peer count, idle timeouts, the
quiet-peer flush and command deadlines.
Bad input is logged at most once per peer and reason per `LOG_INTERVAL`, and never ends anything
but, at worst, the connection that sent it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
import errno
import logging
import socket
import time
from typing import Any

from .protocol import (
    IDLE_FLUSH_SECONDS,
    Command,
    CommandKind,
    CommandOutcome,
    CommandResult,
    Decoded,
    EncodedCommand,
    Item,
    Message,
    Protocol,
    ProtocolError,
    Session,
    Skipped,
)

_LOGGER = logging.getLogger(__name__)

#: Concurrent TCP connections per listener. A small fleet is tens of trackers; the cap only
#: stops a port scan or a reconnect storm from exhausting file descriptors.
MAX_CONNECTIONS = 1024
#: UDP peers whose session (and address, for commands) we remember, least recent dropped first.
MAX_UDP_PEERS = 4096
#: A TCP connection silent this long is closed: trackers send a heartbeat every few minutes,
#: so this only clears half-open connections whose FIN never arrived.
TCP_IDLE_TIMEOUT = 30 * 60.0
#: A UDP peer silent this long is forgotten: its NAT mapping has long expired, so a command sent
#: to that address would not arrive.
UDP_PEER_TIMEOUT = 30 * 60.0
#: How often idle connections and UDP peers are swept.
SWEEP_INTERVAL = 60.0
#: Default and ceiling of the wait for a command's answer.
COMMAND_TIMEOUT = 30.0
MAX_COMMAND_TIMEOUT = 60.0
#: Bad-input log lines: at most one per peer and reason in this many seconds.
LOG_INTERVAL = 300.0
#: Hard bound on stop(): trackers keep TCP sessions open for hours, and unloading must not wait.
STOP_TIMEOUT = 5.0

type Address = tuple[Any, ...]


class ListenerError(Exception):
    """Base of the errors a command can end with."""


class NotConnectedError(ListenerError):
    """The device has no open connection (nor a recent UDP address)."""


class CommandTimeoutError(ListenerError):
    """The device did not answer the command in time."""


class CommandRejectedError(ListenerError):
    """The device answered, and refused the command (or does not support it)."""

    def __init__(self, outcome: CommandOutcome) -> None:
        """Keep the device's answer."""
        super().__init__(outcome.text or outcome.result.value)
        self.outcome = outcome


class CommandEncodeError(ListenerError):
    """The command cannot be expressed for this device's protocol."""


@dataclass(slots=True, eq=False)
class Link:
    """How to reach one device right now: its session and the way back to it."""

    identity: str
    protocol: Protocol
    transport: str  #: "tcp" or "udp"
    address: Address
    session: Session
    send: Callable[[bytes], None]
    connected_at: datetime
    last_seen: datetime

    @property
    def host(self) -> str:
        """The peer's IP address."""
        return str(self.address[0]) if self.address else "?"


@dataclass(slots=True, eq=False)
class _Peer:
    """Where decoded items came from, and the way back: one per TCP connection or datagram."""

    session: Session
    transport: str  #: "tcp" or "udp"
    address: Address
    send: Callable[[bytes], None]
    connection: _TcpConnection | None = None  #: the TCP connection (None for UDP)


@dataclass(slots=True, eq=False)
class _Pending:
    command: Command
    sent: EncodedCommand
    future: asyncio.Future[CommandOutcome]


@dataclass(slots=True)
class ListenerStats:
    """Counters for diagnostics and the benchmark."""

    connections_accepted: int = 0
    connections_refused: int = 0
    datagrams: int = 0
    messages: int = 0
    skipped: int = 0
    replies: int = 0
    commands_sent: int = 0


class _RateLimitedLog:
    """One warning per key per interval, with the count of what was held back."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def warning(self, key: tuple[str, str], msg: str, *args: object) -> None:
        now = time.monotonic()
        last, held = self._last.get(key, (-self._interval, 0))
        if now - last < self._interval:
            self._last[key] = (last, held + 1)
            return
        if len(self._last) > 4096:  # bound the memory a flood of peers can take
            self._last.clear()
        self._last[key] = (now, 0)
        if held:
            _LOGGER.warning("%s (%d similar lines suppressed)", msg % args, held)
        else:
            _LOGGER.warning(msg, *args)


class Listener:
    """Accept trackers on one port, over TCP and UDP, on every interface."""

    def __init__(
        self,
        port: int,
        *,
        on_messages: Callable[[Link, list[Message]], bool | None],
        on_link: Callable[[Link, bool], None] | None = None,
        hosts: Iterable[str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        hold_acks: bool = False,
    ) -> None:
        """Configure the listener; nothing is bound until `start`.

        `on_messages(link, messages)` gets the decoded messages that carry an identity: one call
        per read (a TCP chunk or a datagram) and identity, in the order they were sent, so a
        buffered upload of many records is applied as one update. `on_link(link, connected)` is
        told when an identity gains a link, and when it loses it. `hosts`
        restricts the addresses bound (default: all interfaces, IPv4 and IPv6).

        `hold_acks` (the MQTT gateway): the replies to the messages of one `on_messages` call
        are sent only after it returned anything but False, so a device's report is
        acknowledged only once the consumer took it; a consumer that cannot (its buffer is
        full) returns False, and the device keeps the report and sends it again. Replies to
        frames that carry no identity yet are sent at once either way.
        """
        self.port = port
        self.stats = ListenerStats()
        self._on_messages = on_messages
        self._on_link = on_link
        self._hosts = list(hosts) if hosts is not None else None
        self._clock = clock
        self._hold_acks = hold_acks
        self._log = _RateLimitedLog(LOG_INTERVAL)
        self._server: asyncio.Server | None = None
        self._udp: list[asyncio.DatagramTransport] = []
        self._connections: set[_TcpConnection] = set()
        self._udp_peers: OrderedDict[Address, tuple[Session, float]] = OrderedDict()
        self._links: dict[str, Link] = {}
        self._pending: dict[str, list[_Pending]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind TCP and UDP on the port; raises OSError (EADDRINUSE, EACCES ...) on failure."""
        loop = self._loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _TcpConnection(self), host=self._hosts, port=self.port, reuse_address=True
        )
        try:
            for sock in _udp_sockets(self._hosts, self.port):
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpEndpoint(self), sock=sock
                )
                self._udp.append(transport)
        except OSError:
            await self.stop()
            raise
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)
        _LOGGER.debug("Listening for trackers on port %s (TCP and UDP)", self.port)

    async def stop(self) -> None:
        """Close both sockets and every client connection; fail pending commands."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._loop = None  # no sweep is armed again after this
        for transport in self._udp:
            transport.close()
        self._udp.clear()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # Since Python 3.12 wait_closed() waits for every client; trackers stay for hours.
            server.close_clients()
        for connection in list(self._connections):
            connection.abort()
        if server is not None:
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await server.wait_closed()
            except TimeoutError:
                _LOGGER.debug("Port %s: clients took too long to close", self.port)
        for pending in [p for waiting in self._pending.values() for p in waiting]:
            if not pending.future.done():
                pending.future.set_exception(NotConnectedError("listener stopped"))
        self._pending.clear()
        self._links.clear()
        self._udp_peers.clear()

    # -- queries and commands ---------------------------------------------------------------

    def link(self, identity: str) -> Link | None:
        """The current way to reach `identity`, if any."""
        return self._links.get(identity)

    @property
    def links(self) -> dict[str, Link]:
        """Every identity currently reachable."""
        return dict(self._links)

    @property
    def connection_count(self) -> int:
        """Open TCP connections."""
        return len(self._connections)

    async def send_command(
        self, identity: str, command: Command, *, answer_timeout: float = COMMAND_TIMEOUT
    ) -> CommandOutcome | None:
        """Send `command` to `identity` and wait for its answer.

        Returns the device's successful outcome, or None when the protocol never answers (the
        command was sent; GPS103). Raises NotConnectedError, CommandEncodeError,
        CommandTimeoutError (no answer within `answer_timeout`, at most MAX_COMMAND_TIMEOUT) or
        CommandRejectedError (the device refused, or does not support it).
        """
        link = self._links.get(identity)
        if link is None:
            raise NotConnectedError(identity)
        try:
            sent = link.session.encode_command(command, self._clock())
        except ProtocolError as err:
            raise CommandEncodeError(err.reason) from err
        link.send(sent.data)
        self.stats.commands_sent += 1
        _LOGGER.info(
            "Sent %s to %s (%s over %s)",
            command.kind.value,
            identity,
            link.protocol.value,
            link.transport,
        )
        # The bytes may hold the device's password (GT06 DYD): only at debug level.
        _LOGGER.debug("Command bytes to %s: %s", identity, sent.data.hex())
        if not sent.confirmable:
            return None
        loop = asyncio.get_running_loop()
        pending = _Pending(command, sent, loop.create_future())
        self._pending.setdefault(identity, []).append(pending)
        try:
            async with asyncio.timeout(min(answer_timeout, MAX_COMMAND_TIMEOUT)):
                outcome = await pending.future
        except TimeoutError as err:
            raise CommandTimeoutError(identity) from err
        finally:
            waiting = self._pending.get(identity, [])
            if pending in waiting:
                waiting.remove(pending)
            if not waiting:
                self._pending.pop(identity, None)
        if outcome.result is not CommandResult.SUCCESS:
            raise CommandRejectedError(outcome)
        return outcome

    # -- from the connections ---------------------------------------------------------------

    def _handle_items(self, items: list[Item], peer: _Peer) -> None:
        """Send replies, deliver messages (grouped per identity), log skips; never raises."""
        batch: list[Message] = []
        batch_link: Link | None = None
        held: list[bytes] = []  #: replies waiting for the consumer (hold_acks)
        for item in items:
            if isinstance(item, Skipped):
                self.stats.skipped += 1
                host = str(peer.address[0]) if peer.address else "?"
                self._log.warning(
                    (host, item.reason),
                    "Port %s: skipped %d bytes from %s (%s, %s): %s; hex %s",
                    self.port,
                    len(item.raw),
                    host,
                    peer.transport,
                    item.protocol.value if item.protocol else "unknown protocol",
                    item.reason,
                    item.raw[:64].hex(),
                )
                continue
            try:
                link = self._accept(item, peer)
            except Exception:
                # A command matcher's bug must not close the connection.
                _LOGGER.exception(
                    "Port %s: error handling a message from %s", self.port, peer.address
                )
                continue
            if link is None:
                continue
            if link is not batch_link:
                if batch_link is not None:
                    self._deliver(batch_link, batch, held, peer)
                batch_link, batch, held = link, [], []
            batch.append(item.message)
            if self._hold_acks and item.ack is not None:
                held.append(item.ack)
        if batch_link is not None:
            self._deliver(batch_link, batch, held, peer)

    def _deliver(self, link: Link, messages: list[Message], held: list[bytes], peer: _Peer) -> None:
        try:
            accepted = self._on_messages(link, messages) is not False
        except Exception:
            # A consumer's bug must not close the connection.
            _LOGGER.exception("Port %s: error handling messages from %s", self.port, link.address)
            accepted = False
        if accepted:
            for ack in held:
                peer.send(ack)
                self.stats.replies += 1

    def _accept(self, item: Decoded, peer: _Peer) -> Link | None:
        """Reply, keep the identity's link current, settle commands; the link to deliver to."""
        message = item.message
        session = peer.session
        identity = message.device_id or session.device_id
        if item.ack is not None and not (self._hold_acks and identity):
            peer.send(item.ack)
            self.stats.replies += 1
        if not identity:
            return None  # a GT06 frame before its login: answered, but nobody to give it to
        self.stats.messages += 1
        now = self._clock()
        link = self._links.get(identity)
        if link is None or link.session is not session:
            if link is not None:
                _LOGGER.debug("%s reconnected from %s", identity, peer.address[0])
            link = Link(
                identity, message.protocol, peer.transport, peer.address, session, peer.send,
                now, now,
            )  # fmt: skip
            self._links[identity] = link
            if peer.connection is not None:
                peer.connection.identities.add(identity)
            if self._on_link is not None:
                self._on_link(link, True)
        else:
            link.last_seen = now
            link.address = peer.address
            link.send = peer.send
        for pending in list(self._pending.get(identity, ())):
            outcome = _outcome(pending, session, message)
            if outcome is not None and not pending.future.done():
                pending.future.set_result(outcome)
        return link

    def _drop_link(self, identity: str | None, session: Session, reason: str) -> None:
        """Forget `identity`'s link if it still runs over `session`; fail its commands."""
        link = self._links.get(identity) if identity else None
        if identity and link is not None and link.session is session:
            del self._links[identity]
            self._fail_pending(identity, reason)
            if self._on_link is not None:
                self._on_link(link, False)

    def _connection_lost(self, connection: _TcpConnection) -> None:
        self._connections.discard(connection)
        for identity in connection.identities:
            self._drop_link(identity, connection.session, "connection closed")

    def _fail_pending(self, identity: str, reason: str) -> None:
        for pending in self._pending.get(identity, ()):
            if not pending.future.done():
                pending.future.set_exception(NotConnectedError(reason))

    def _udp_session(self, address: Address) -> Session:
        entry = self._udp_peers.pop(address, None)
        session = entry[0] if entry else Session(datagram=True)
        self._udp_peers[address] = (session, time.monotonic())
        if len(self._udp_peers) > MAX_UDP_PEERS:
            _, (old_session, _) = self._udp_peers.popitem(last=False)
            self._drop_link(old_session.device_id, old_session, "UDP peer forgotten")
        return session

    def _sweep(self) -> None:
        """Close silent TCP connections and forget silent UDP peers."""
        try:
            now = time.monotonic()
            for connection in list(self._connections):
                if now - connection.last_activity > TCP_IDLE_TIMEOUT:
                    _LOGGER.debug("Closing idle connection from %s", connection.peer)
                    connection.abort()
            while self._udp_peers:
                address, (session, seen) = next(iter(self._udp_peers.items()))
                if now - seen <= UDP_PEER_TIMEOUT:
                    break
                del self._udp_peers[address]
                self._drop_link(session.device_id, session, "UDP peer forgotten")
        finally:
            if self._sweeper is not None:
                self._sweeper.cancel()  # a sweep run by hand must not leave two timers
            if self._loop is not None:
                self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep)


def _outcome(pending: _Pending, session: Session, message: Message) -> CommandOutcome | None:
    """The answer `message` gives to a pending command, if it is one."""
    outcome = session.command_outcome(pending.command, pending.sent, message)
    if outcome is not None:
        return outcome
    if pending.command.is_relay and message.relay is not None and not message.historical:
        # The device's next status shows the relay where we asked: that confirms it too.
        wanted = pending.command.kind is CommandKind.RELAY_CUT
        if message.relay is wanted:
            return CommandOutcome(CommandResult.SUCCESS, relay=wanted)
    return None


def _udp_sockets(hosts: list[str] | None, port: int) -> list[socket.socket]:
    """Bound UDP sockets: IPv4 and (where the host has it) IPv6, or the given hosts."""
    targets = hosts if hosts is not None else ["0.0.0.0", "::"]  # noqa: S104 - all interfaces, by design
    sockets: list[socket.socket] = []
    try:
        for host in targets:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM)
            except OSError:
                if hosts is None and family == socket.AF_INET6:
                    continue  # no IPv6 on this host
                raise
            sockets.append(sock)
            # No SO_REUSEADDR: for UDP on Linux it would let a second process share the port.
            if family == socket.AF_INET6:
                # Bind "::" for IPv6 only: IPv4 has its own socket on the same port.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((host, port))
            except OSError as err:
                if hosts is None and family == socket.AF_INET6 and err.errno != errno.EADDRINUSE:
                    sockets.remove(sock)
                    sock.close()
                    continue  # IPv6 disabled: serve IPv4 only
                raise
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class _TcpConnection(asyncio.Protocol):
    """One tracker's TCP connection."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.session = Session()
        self.identities: set[str] = set()
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ()
        self.last_activity = time.monotonic()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._peer = _Peer(self.session, "tcp", (), self._write, self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = self._peer.address = transport.get_extra_info("peername") or ()
        listener = self.listener
        if len(listener._connections) >= MAX_CONNECTIONS:  # noqa: SLF001 - same module
            listener.stats.connections_refused += 1
            listener._log.warning(  # noqa: SLF001
                ("*", "connection limit"),
                "Port %s: refusing a connection from %s: %d connections are open",
                listener.port,
                self.peer[0] if self.peer else "?",
                MAX_CONNECTIONS,
            )
            transport.abort()
            return
        listener._connections.add(self)  # noqa: SLF001
        listener.stats.connections_accepted += 1
        _LOGGER.debug("Port %s: connection from %s", listener.port, self.peer)

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        listener = self.listener
        items = self.session.feed(data, listener._clock())  # noqa: SLF001
        listener._handle_items(items, self._peer)  # noqa: SLF001
        self._arm_flush()

    def eof_received(self) -> bool | None:
        self._flush(final=True)
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self.listener._connection_lost(self)  # noqa: SLF001
        _LOGGER.debug("Port %s: %s disconnected (%s)", self.listener.port, self.peer, exc)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _arm_flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self.session.buffered and self.transport is not None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(IDLE_FLUSH_SECONDS, self._flush)

    def _flush(self, *, final: bool = False) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        listener = self.listener
        now = listener._clock()  # noqa: SLF001
        items = self.session.close(now) if final else self.session.flush(now)
        listener._handle_items(items, self._peer)  # noqa: SLF001


class _UdpEndpoint(asyncio.DatagramProtocol):
    """The UDP socket: each datagram is decoded on its own, replies go to its source."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        listener = self.listener
        listener.stats.datagrams += 1
        session = listener._udp_session(addr)  # noqa: SLF001
        transport = self.transport

        def send(reply: bytes) -> None:
            if transport is not None and not transport.is_closing():
                transport.sendto(reply, addr)

        items = session.feed(data, listener._clock())  # noqa: SLF001
        listener._handle_items(items, _Peer(session, "udp", addr, send))  # noqa: SLF001

    def error_received(self, exc: Exception) -> None:
        _LOGGER.debug("Port %s: UDP error %s", self.listener.port, exc)


__all__ = [
    "COMMAND_TIMEOUT",
    "CommandEncodeError",
    "CommandRejectedError",
    "CommandTimeoutError",
    "Link",
    "Listener",
    "ListenerError",
    "NotConnectedError",
]
