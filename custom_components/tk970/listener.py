"""Transport: the TCP server and UDP endpoint on one port, a protocol session per peer, commands.

asyncio only, no Home Assistant import. Bytes from a socket go into a `protocol.Session`; the
replies it returns are written at once (devices retransmit or hang up without them); decoded
messages with an identity go to `on_messages`, one call per read and identity, in order.

The port faces the internet, so this module enforces every limit a stranger could otherwise
grow (`limits.ListenerLimits`, each default named there with its reason): connections,
connections that have not identified (in all and per source address) and how long they may
take to do so, UDP peers, identities per peer and peers per identity, a message budget per peer
and per identity, the bytes read at once and the replies waiting for a peer that does not read.
It also owns which
session a command goes over: the one of the identity that most recently sent a frame with a
valid checksum, and only that session's answer settles the command. Lines a peer can trigger are
rate-limited per reason (`ratelog`). Nothing a peer sends raises out of this module; at worst
its own connection is closed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterable
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
import errno
import logging
import socket
from typing import Any

from .limits import (
    DEFAULT_LIMITS,
    ListenerLimits,
    ResourceFigures,
    raise_open_files_limit,
    set_receive_buffer,
)
from .protocol import (
    IDLE_FLUSH_SECONDS,
    Command,
    CommandKind,
    CommandOutcome,
    CommandResult,
    EncodedCommand,
    Item,
    Message,
    Protocol,
    ProtocolError,
    Session,
    Skipped,
)
from .ratelog import RateLimitedLog

_LOGGER = logging.getLogger(__name__)

#: Default and ceiling of the wait for a command's answer.
COMMAND_TIMEOUT = 30.0
MAX_COMMAND_TIMEOUT = 60.0
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
    """One session's claim to an identity: how to reach that device over that session."""

    identity: str
    protocol: Protocol
    transport: str  #: "tcp" or "udp"
    address: Address
    session: Session
    send: Callable[[bytes], None]
    connected_at: datetime
    last_seen: datetime
    #: order of this session's newest frame with a valid checksum among all the listener saw
    #: (larger is more recent; 0: none yet). Commands go over the claim with the largest.
    valid_seq: int = 0
    #: the same for any frame, valid checksum or not (who is talking at all)
    heard_seq: int = 0
    _peer: _Peer | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        """The peer's IP address."""
        return str(self.address[0]) if self.address else "?"


class _Peer:
    """One TCP connection or one UDP address: its session, claims and message budget."""

    __slots__ = (
        "address",
        "blocked_until",
        "connection",
        "debt",
        "host",
        "links",
        "send",
        "session",
        "stamp",
        "tokens",
        "transport",
    )

    def __init__(
        self,
        session: Session,
        transport: str,
        address: Address,
        send: Callable[[bytes], None],
        burst: float,
        connection: _TcpConnection | None = None,
    ) -> None:
        self.session = session
        self.transport = transport
        self.address = address
        self.host = str(address[0]) if address else "?"
        self.send = send
        self.connection = connection  #: the TCP connection (None for UDP)
        self.links: dict[str, Link] = {}  #: identities this peer claims
        self.tokens = burst  #: message budget left (may run below zero)
        self.stamp = 0.0  #: when `tokens` was last refilled (loop time)
        self.blocked_until = 0.0  #: UDP: datagrams are dropped until then
        self.debt = 0.0  #: the lowest identity budget this read ran into (below zero: over)


@dataclass(slots=True, eq=False)
class _Identity:
    """The live sessions claiming one identity, and which of them commands go over."""

    current: Link
    links: list[Link]
    tokens: float
    stamp: float
    #: the frame count when the newest session claimed it: a session that has sent a frame
    #: since is talking, and two talking sessions are a duplicate
    claim_seq: int = 0
    duplicate: bool = False


@dataclass(slots=True, eq=False)
class _Pending:
    command: Command
    sent: EncodedCommand
    future: asyncio.Future[CommandOutcome]
    link: Link  #: only this session's answer settles the command


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
    #: times a peer was held back by its message budget
    throttled: int = 0
    #: datagrams dropped unread (a UDP peer over its budget)
    datagrams_dropped: int = 0
    #: messages dropped because their peer claimed too many identities
    identities_refused: int = 0
    #: connections the listener closed or refused, by reason
    closed: dict[str, int] = field(default_factory=dict)


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
        limits: ListenerLimits | None = None,
        on_duplicate: Callable[[str, list[Link]], None] | None = None,
        hold_acks: bool = False,
    ) -> None:
        """Configure the listener; nothing is bound until `start`.

        `on_messages(link, messages)` gets the decoded messages that carry an identity: one call
        per read (a TCP chunk or a datagram) and identity, in the order they were sent, so a
        buffered upload of many records is applied as one update. `on_link(link, True)` is told
        when commands for an identity go over a new session (its first, or another that sent a
        valid frame more recently), `on_link(link, False)` when its last session is gone.
        `on_duplicate(identity, links)` is told when two sessions claiming one identity both
        talk, then of every change while that lasts, and once more (with one link, or none) when
        only one is left. `hosts` restricts the addresses bound (default: all interfaces, IPv4
        and IPv6). `limits` replaces the default bounds.

        `hold_acks` (the MQTT gateway): the replies to the messages of one `on_messages` call
        are sent only after it returned anything but False, so a device's report is
        acknowledged only once the consumer took it; a consumer that cannot (its buffer is
        full) returns False, and the device keeps the report and sends it again. Replies to
        frames that no consumer is given (no identity yet) are sent at once either way.
        """
        self.port = port
        self.stats = ListenerStats()
        self.limits = limits or DEFAULT_LIMITS
        self.figures: ResourceFigures | None = None
        self._on_messages = on_messages
        self._on_link = on_link
        self._on_duplicate = on_duplicate
        self._hosts = list(hosts) if hosts is not None else None
        self._clock = clock
        self._hold_acks = hold_acks
        self._log = RateLimitedLog(_LOGGER, self.limits.log_interval)
        self._server: asyncio.Server | None = None
        self._udp: list[asyncio.DatagramTransport] = []
        self._connections: set[_TcpConnection] = set()
        self._max_connections = self.limits.max_connections
        self._unidentified = 0
        self._unidentified_by_host: dict[str, int] = {}
        self._udp_peers: OrderedDict[Address, tuple[_Peer, float]] = OrderedDict()
        self._identities: dict[str, _Identity] = {}
        self._pending: dict[str, list[_Pending]] = {}
        self._seq = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: one receive buffer for every TCP connection: each read is copied out at once
        self._read_view = memoryview(bytearray(self.limits.read_size))

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind TCP and UDP on the port; raises OSError (EADDRINUSE, EACCES ...) on failure."""
        loop = self._loop = asyncio.get_running_loop()
        limits = self.limits
        # Counting the open files lists /proc/self/fd: file I/O, kept off the event loop.
        soft_before, soft, hard, in_use = await loop.run_in_executor(
            None, raise_open_files_limit, limits.max_connections + limits.fd_headroom
        )
        room = soft - in_use - limits.fd_headroom
        self._max_connections = max(1, min(limits.max_connections, max(room, soft // 4)))
        self._server = await loop.create_server(
            lambda: _TcpConnection(self),
            host=self._hosts,
            port=self.port,
            reuse_address=True,
            backlog=1024,
        )
        granted: int | None = None
        sockets: list[socket.socket] = []
        try:
            sockets = _udp_sockets(self._hosts, self.port, limits.udp_receive_buffer)
            while sockets:
                sock = sockets[0]
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpEndpoint(self), sock=sock
                )
                sockets.pop(0)  # the transport owns it now
                self._udp.append(transport)
                granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError:
            for sock in sockets:  # bound but not handed to a transport: ours to close
                sock.close()
            await self.stop()
            raise
        self._sweeper = loop.call_later(limits.sweep_interval, self._sweep)
        self.figures = ResourceFigures(
            self._max_connections, soft, soft_before, hard, in_use, granted
        )
        _LOGGER.info(
            "Listening for trackers on port %s (TCP and UDP): up to %d TCP connections "
            "(open-files limit %d%s, hard limit %d, %d in use); UDP receive buffer %s bytes "
            "(asked for %d)",
            self.port,
            self._max_connections,
            soft,
            f", raised from {soft_before}" if soft != soft_before else "",
            hard,
            in_use,
            granted if granted is not None else "-",
            limits.udp_receive_buffer,
        )

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
        self._identities.clear()
        self._udp_peers.clear()

    # -- queries and commands ---------------------------------------------------------------

    def link(self, identity: str) -> Link | None:
        """The session commands for `identity` go over now, if any."""
        claimed = self._identities.get(identity)
        return claimed.current if claimed is not None else None

    @property
    def links(self) -> dict[str, Link]:
        """Every identity currently reachable, with the session its commands go over."""
        return {identity: claimed.current for identity, claimed in self._identities.items()}

    def claims(self, identity: str) -> list[Link]:
        """Every live session claiming `identity` (more than one: a duplicate or a spoofer)."""
        claimed = self._identities.get(identity)
        return list(claimed.links) if claimed is not None else []

    @property
    def connection_count(self) -> int:
        """Open TCP connections."""
        return len(self._connections)

    @property
    def unidentified_count(self) -> int:
        """Open TCP connections that have not named their device yet."""
        return self._unidentified

    @property
    def udp_peer_count(self) -> int:
        """UDP addresses remembered."""
        return len(self._udp_peers)

    @property
    def sequence(self) -> int:
        """The `Link.heard_seq` of the newest frame (it only grows)."""
        return self._seq

    @property
    def max_connections(self) -> int:
        """The connection cap in force (the limit, clamped below the open-files limit)."""
        return self._max_connections

    async def send_command(
        self, identity: str, command: Command, *, answer_timeout: float = COMMAND_TIMEOUT
    ) -> CommandOutcome | None:
        """Send `command` to `identity` and wait for its answer on the same session.

        Returns the device's successful outcome, or None when the protocol never answers (the
        command was sent; GPS103). Raises NotConnectedError (no session, or the session closed
        while waiting), CommandEncodeError, CommandTimeoutError (no answer within
        `answer_timeout`, at most MAX_COMMAND_TIMEOUT) or CommandRejectedError (the device
        refused, or does not support it).
        """
        link = self.link(identity)
        if link is None:
            raise NotConnectedError(identity)
        try:
            sent = link.session.encode_command(command, self._clock())
        except ProtocolError as err:
            raise CommandEncodeError(err.reason) from err
        link.send(sent.data)
        self.stats.commands_sent += 1
        _LOGGER.info(
            "Sent %s to %s (%s over %s from %s)",
            command.kind.value,
            identity,
            link.protocol.value,
            link.transport,
            link.host,
        )
        # The bytes may hold the device's password (GT06 DYD): only at debug level.
        _LOGGER.debug("Command bytes to %s: %s", identity, sent.data.hex())
        if not sent.confirmable:
            return None
        loop = asyncio.get_running_loop()
        pending = _Pending(command, sent, loop.create_future(), link)
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

    def _handle_items(self, items: list[Item], peer: _Peer, now: datetime, mono: float) -> bool:
        """Send replies, deliver messages (grouped per identity), log skips; never raises.

        `now` is the clock's time, `mono` the event loop's; True if a frame was decoded.
        """
        decoded = False
        acks: list[bytes] = []
        batch: list[Message] = []
        batch_link: Link | None = None
        held: list[bytes] = []  #: replies waiting for the consumer (hold_acks)
        for item in items:
            if isinstance(item, Skipped):
                self._skipped(item, peer)
                continue
            decoded = True
            message, ack = item
            try:
                link = self._accept(message, peer, now)
            except Exception:  # noqa: BLE001 - logged, rate-limited
                # A command matcher's bug must not close the connection.
                self._log.exception(
                    "error handling a message",
                    "Port %s: error handling a message from %s",
                    self.port,
                    peer.address,
                )
                link = None
            if link is None:
                # Given to no consumer (no identity yet, or refused): answered at once.
                if ack is not None:
                    acks.append(ack)
                continue
            if link is not batch_link:
                if batch_link is not None:
                    self._deliver(batch_link, batch, held, peer, mono)
                batch_link, batch, held = link, [], []
            batch.append(message)
            if ack is not None:
                (held if self._hold_acks else acks).append(ack)
        if acks:
            # One write for all of a read's replies; before delivery, so the device hears
            # back however long Home Assistant takes.
            peer.send(acks[0] if len(acks) == 1 else b"".join(acks))
            self.stats.replies += len(acks)
        if batch_link is not None:
            self._deliver(batch_link, batch, held, peer, mono)
        return decoded

    def _skipped(self, item: Skipped, peer: _Peer) -> None:
        self.stats.skipped += 1
        self._log.warning(
            f"skipped: {item.reason}",
            "Port %s: skipped %d bytes from %s (%s, %s): %s; hex %s",
            self.port,
            len(item.raw),
            peer.host,
            peer.transport,
            item.protocol.value if item.protocol else "unknown protocol",
            item.reason,
            item.raw[:64].hex(),
        )

    def _deliver(
        self, link: Link, messages: list[Message], held: list[bytes], peer: _Peer, mono: float
    ) -> None:
        claimed = self._identities.get(link.identity)
        if claimed is not None:
            # The identity's budget, whichever of its sessions spends it; settled together
            # with the peer's own budget after the read.
            limits = self.limits
            tokens = claimed.tokens + (mono - claimed.stamp) * limits.message_rate
            claimed.tokens = min(tokens, limits.message_burst) - len(messages)
            claimed.stamp = mono
            peer.debt = min(peer.debt, claimed.tokens)
        try:
            accepted = self._on_messages(link, messages) is not False
        except Exception:  # noqa: BLE001 - logged, rate-limited
            # A consumer's bug must not close the connection.
            self._log.exception(
                "error handling messages",
                "Port %s: error handling messages from %s",
                self.port,
                link.address,
            )
            accepted = False
        if held and accepted:
            peer.send(held[0] if len(held) == 1 else b"".join(held))
            self.stats.replies += len(held)

    def _accept(self, message: Message, peer: _Peer, now: datetime) -> Link | None:
        """Keep the identity's claims current, settle commands; the link to deliver to."""
        identity = message.device_id or peer.session.device_id
        if not identity:
            return None  # a GT06 frame before its login: answered, but nobody to give it to
        link = peer.links.get(identity)
        if link is None:
            link = self._claim(identity, message.protocol, peer, now)
            if link is None:
                return None
        else:
            link.last_seen = now
        claimed = self._identities[identity]
        self.stats.messages += 1
        self._seq += 1
        link.heard_seq = self._seq
        if message.checksum_ok is not False:
            link.valid_seq = self._seq
            if claimed.current is not link:
                claimed.current = link
                self._notify_link(link, connected=True)
        if len(claimed.links) > 1 and not claimed.duplicate:
            self._check_duplicate(identity, claimed)
        if pending := self._pending.get(identity):
            for waiting in list(pending):
                if waiting.link is link and not waiting.future.done():
                    outcome = _outcome(waiting, link.session, message)
                    if outcome is not None:
                        waiting.future.set_result(outcome)
        return link

    def _claim(self, identity: str, protocol: Protocol, peer: _Peer, now: datetime) -> Link | None:
        """A session names an identity for the first time: link it, within the limits."""
        limits = self.limits
        if len(peer.links) >= limits.max_identities_per_peer:
            self.stats.identities_refused += 1
            if peer.connection is not None:
                peer.connection.close_for(
                    "too many identities",
                    f"it claimed more than {limits.max_identities_per_peer} tracker identities",
                )
            else:
                self._log.warning(
                    "udp identities",
                    "Port %s: ignoring identity %s from %s (UDP): that address already claimed "
                    "%d identities",
                    self.port,
                    identity,
                    peer.host,
                    len(peer.links),
                )
            return None
        link = Link(
            identity, protocol, peer.transport, peer.address, peer.session, peer.send, now, now,
            _peer=peer,
        )  # fmt: skip
        peer.links[identity] = link
        if peer.connection is not None and len(peer.links) == 1:
            peer.connection.identified()
        claimed = self._identities.get(identity)
        if claimed is None:
            self._identities[identity] = _Identity(
                link, [link], limits.message_burst, self._loop_time(), self._seq
            )
            self._notify_link(link, connected=True)
            return link
        claimed.links.append(link)
        if peer.transport == "udp":
            # A UDP tracker whose NAT mapping changed speaks from a new port: the old address
            # is stale, not a second device (its commands fail; only this address can answer).
            moved = [old for old in claimed.links if old.transport == "udp" and old is not link]
            for old in moved:
                self._forget_udp_link(old)
            if len(claimed.links) == 1:
                return link
        _LOGGER.debug(
            "%s: another session from %s claims it (%d live)",
            identity,
            peer.host,
            len(claimed.links),
        )
        claimed.claim_seq = self._seq
        if len(claimed.links) > limits.max_sessions_per_identity:
            quietest = min(claimed.links[:-1], key=lambda other: other.valid_seq)
            self._close_link_peer(quietest, "too many sessions for one identity")
        if claimed.duplicate:
            self._notify_duplicate(identity, claimed)
        return link

    def _check_duplicate(self, identity: str, claimed: _Identity) -> None:
        """Two sessions that both sent frames since the newest of them claimed: a duplicate.

        A session that only lingers (a tracker's old connection, closed without a FIN) sends
        nothing, so a reconnecting tracker is not one.
        """
        talking = sum(1 for other in claimed.links if other.heard_seq > claimed.claim_seq)
        if talking < 2:
            return
        claimed.duplicate = True
        self._log.warning(
            "duplicate identity",
            "Port %s: two sessions claim tracker %s and both talk (%s): a duplicate tracker ID, "
            "or someone sending as this tracker",
            self.port,
            identity,
            ", ".join(f"{other.host} over {other.transport}" for other in claimed.links),
        )
        self._notify_duplicate(identity, claimed)

    def _over_budget(self, peer: _Peer, tokens: float, which: str) -> None:
        """Hold `peer` back until the budget has refilled a little beyond zero.

        A second's worth (at most a quarter of the burst): well below the half burst that
        ends a throttled stretch, so a peer that keeps sending stays in one stretch.
        """
        limits = self.limits
        rate = limits.message_rate
        delay = (min(limits.message_burst / 4, rate) - tokens) / rate
        self.stats.throttled += 1
        if peer.connection is not None:
            peer.connection.throttle(delay)
        else:
            peer.blocked_until = max(peer.blocked_until, self._loop_time() + delay)
            self._log.warning(
                f"udp {which} budget",
                "Port %s: dropping datagrams from %s for %.1f s: over the %s message budget "
                "(%g a second, bursts of %g)",
                self.port,
                peer.host,
                delay,
                which,
                rate,
                limits.message_burst,
            )

    def _charge(self, peer: _Peer, items: list[Item], nbytes: int, now: float) -> None:
        """Spend `peer`'s budget on one read: a message or skip costs one, so do its bytes."""
        limits = self.limits
        cost = max(len(items), nbytes // limits.bytes_per_message)
        if not cost:
            return
        tokens = min(peer.tokens + (now - peer.stamp) * limits.message_rate, limits.message_burst)
        if peer.connection is not None and tokens >= limits.message_burst / 2:
            # Half the burst saved up again: whatever held it back (an upload) is over.
            peer.connection.within_budget()
        peer.tokens = tokens - cost
        peer.stamp = now
        debt, peer.debt = peer.debt, 0.0
        if peer.tokens < 0 or debt < 0:
            if debt < peer.tokens:
                self._over_budget(peer, debt, "identity")
            else:
                self._over_budget(peer, peer.tokens, "connection")

    def _drop_link(self, link: Link, reason: str) -> None:
        """Forget one session's claim; fail the commands sent over it."""
        identity = link.identity
        peer = link._peer  # noqa: SLF001 - same module
        if peer is not None and peer.links.get(identity) is link:
            del peer.links[identity]
        for pending in self._pending.get(identity, ()):
            if pending.link is link and not pending.future.done():
                pending.future.set_exception(NotConnectedError(reason))
        claimed = self._identities.get(identity)
        if claimed is None or link not in claimed.links:
            return
        claimed.links.remove(link)
        if not claimed.links:
            del self._identities[identity]
            if claimed.duplicate:
                self._notify_duplicate(identity, claimed)
            self._notify_link(link, connected=False)
            return
        if claimed.duplicate:
            if len(claimed.links) == 1:
                claimed.duplicate = False
            self._notify_duplicate(identity, claimed)
        if claimed.current is link:
            claimed.current = max(claimed.links, key=lambda other: other.valid_seq)
            self._notify_link(claimed.current, connected=True)

    def _close_link_peer(self, link: Link, reason: str) -> None:
        """End the session behind `link`: close its connection, or forget its UDP address."""
        peer = link._peer  # noqa: SLF001 - same module
        if peer is None:
            self._drop_link(link, reason)
        elif peer.connection is not None:
            peer.connection.close_for(reason, "another session claimed its identity")
            self._drop_peer(peer, reason)
        else:
            self._udp_peers.pop(peer.address, None)
            self._drop_peer(peer, reason)

    def _forget_udp_link(self, link: Link) -> None:
        self._drop_link(link, "the tracker moved to another UDP address")
        peer = link._peer  # noqa: SLF001 - same module
        if peer is not None and not peer.links:
            self._udp_peers.pop(peer.address, None)

    def _drop_peer(self, peer: _Peer, reason: str) -> None:
        for link in list(peer.links.values()):
            self._drop_link(link, reason)

    def _notify_link(self, link: Link, *, connected: bool) -> None:
        if self._on_link is not None:
            try:
                self._on_link(link, connected)
            except Exception:  # noqa: BLE001 - logged, rate-limited
                self._log.exception(
                    "error handling a link change",
                    "Port %s: error handling a link change",
                    self.port,
                )

    def _notify_duplicate(self, identity: str, claimed: _Identity) -> None:
        if self._on_duplicate is not None:
            try:
                self._on_duplicate(identity, list(claimed.links))
            except Exception:  # noqa: BLE001 - logged, rate-limited
                self._log.exception(
                    "error handling a duplicate",
                    "Port %s: error handling a duplicate identity",
                    self.port,
                )

    # -- TCP bookkeeping --------------------------------------------------------------------

    def _admit(self, connection: _TcpConnection) -> str | None:
        """Take a new connection in, or say why not."""
        limits = self.limits
        host = connection.peer.host
        if len(self._connections) >= self._max_connections:
            return "connection limit"
        if self._unidentified >= limits.max_unidentified:
            return "unidentified connection limit"
        if self._unidentified_by_host.get(host, 0) >= limits.max_unidentified_per_host:
            return "unidentified connections per address"
        self._connections.add(connection)
        self._unidentified += 1
        self._unidentified_by_host[host] = self._unidentified_by_host.get(host, 0) + 1
        self.stats.connections_accepted += 1
        return None

    def _identified(self, connection: _TcpConnection) -> None:
        self._unidentified -= 1
        host = connection.peer.host
        left = self._unidentified_by_host.get(host, 1) - 1
        if left > 0:
            self._unidentified_by_host[host] = left
        else:
            self._unidentified_by_host.pop(host, None)

    def _connection_lost(self, connection: _TcpConnection) -> None:
        if connection not in self._connections:
            return
        self._connections.discard(connection)
        if not connection.is_identified:
            self._identified(connection)
        self._drop_peer(connection.peer, "connection closed")

    def _closed(self, reason: str) -> None:
        closed = self.stats.closed
        closed[reason] = closed.get(reason, 0) + 1

    # -- UDP bookkeeping --------------------------------------------------------------------

    def _datagram(self, data: bytes, addr: Address, endpoint: _UdpEndpoint) -> None:
        self.stats.datagrams += 1
        entry = self._udp_peers.get(addr)
        if entry is not None:
            peer = entry[0]
            heard = self._loop_time()
            if peer.blocked_until > heard:
                self.stats.datagrams_dropped += 1
                return
            self._udp_peers[addr] = (peer, heard)
            self._udp_peers.move_to_end(addr)
        else:
            # Strangers' datagrams get a session of their own that is kept only once it names
            # a device: a flood from made-up addresses cannot push real trackers out.
            transport = endpoint.transport

            def send(reply: bytes) -> None:
                if transport is not None and not transport.is_closing():
                    transport.sendto(reply, addr)

            peer = _Peer(Session(datagram=True), "udp", addr, send, self.limits.message_burst)
            peer.stamp = self._loop_time()
        now = self._clock()
        mono = self._loop_time()
        items = peer.session.feed(data, now)
        self._handle_items(items, peer, now, mono)
        if entry is None and peer.links:
            self._remember_udp(peer)
        self._charge(peer, items, len(data), mono)

    def _remember_udp(self, peer: _Peer) -> None:
        self._udp_peers[peer.address] = (peer, self._loop_time())
        while len(self._udp_peers) > self.limits.max_udp_peers:
            _, (old, _) = self._udp_peers.popitem(last=False)
            self._drop_peer(old, "UDP peer forgotten")

    # -- timers -----------------------------------------------------------------------------

    def _loop_time(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else 0.0

    def _sweep(self) -> None:
        """Close TCP connections without a frame for too long; forget silent UDP peers."""
        limits = self.limits
        try:
            now = self._loop_time()
            for connection in list(self._connections):
                if now - connection.last_frame > limits.tcp_idle_timeout:
                    _LOGGER.debug("Closing idle connection from %s", connection.peer.address)
                    self._closed("idle")
                    connection.abort()
            while self._udp_peers:
                address, (peer, seen) = next(iter(self._udp_peers.items()))
                if now - seen <= limits.udp_peer_timeout:
                    break
                del self._udp_peers[address]
                self._drop_peer(peer, "UDP peer forgotten")
            # Python's sets and dicts keep the room they once grew to (a flood of connections
            # or identities): copies take only what they hold now.
            self._connections = set(self._connections)
            self._identities = dict(self._identities)
            self._unidentified_by_host = dict(self._unidentified_by_host)
            self._udp_peers = OrderedDict(self._udp_peers)
            self._pending = dict(self._pending)
        finally:
            if self._sweeper is not None:
                self._sweeper.cancel()  # a sweep run by hand must not leave two timers
            if self._loop is not None:
                self._sweeper = self._loop.call_later(limits.sweep_interval, self._sweep)


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


def _udp_sockets(hosts: list[str] | None, port: int, receive_buffer: int) -> list[socket.socket]:
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
            set_receive_buffer(sock, receive_buffer)
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


class _TcpConnection(asyncio.BufferedProtocol):
    """One TCP connection: reads into the listener's buffer, paced by budget and write buffer."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.session = Session()
        self.transport: asyncio.Transport | None = None
        self.peer = _Peer(self.session, "tcp", (), self._write, listener.limits.message_burst, self)
        self.is_identified = False
        self.last_frame = 0.0
        self._flush_timer: asyncio.TimerHandle | None = None
        self._identify_timer: asyncio.TimerHandle | None = None
        self._resume_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        self._throttled_since: float | None = None
        self._write_paused = False
        self._closing = False

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        listener = self.listener
        address = transport.get_extra_info("peername") or ()
        peer = self.peer
        peer.address = address
        peer.host = str(address[0]) if address else "?"
        refused = listener._admit(self)  # noqa: SLF001 - same module
        if refused is not None:
            self._closing = True
            listener.stats.connections_refused += 1
            listener._closed(refused)  # noqa: SLF001
            listener._log.warning(  # noqa: SLF001
                refused,
                "Port %s: refusing a connection from %s (%s: %d open, %d not identified)",
                listener.port,
                peer.host,
                refused,
                listener.connection_count,
                listener.unidentified_count,
            )
            transport.abort()
            return
        limits = listener.limits
        loop = asyncio.get_running_loop()
        self.last_frame = peer.stamp = loop.time()
        transport.set_write_buffer_limits(
            high=limits.write_buffer_high, low=limits.write_buffer_low
        )
        sock = transport.get_extra_info("socket")
        if sock is not None and limits.tcp_send_buffer > 0:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.tcp_send_buffer)
        self._identify_timer = loop.call_later(limits.identify_timeout, self._identify_expired)
        _LOGGER.debug("Port %s: connection from %s", listener.port, address)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.listener._read_view  # noqa: SLF001 - same module

    def buffer_updated(self, nbytes: int) -> None:
        listener = self.listener
        data = listener._read_view[:nbytes].tobytes()  # noqa: SLF001
        now = listener._clock()  # noqa: SLF001
        try:
            items = self.session.feed(data, now)
        except Exception:  # noqa: BLE001 - a decoder bug must not escape into asyncio
            listener._log.exception(  # noqa: SLF001
                "error decoding", "Port %s: error decoding bytes from %s", listener.port,
                self.peer.host,
            )  # fmt: skip
            self.close_for("decoder error", "its bytes could not be decoded")
            return
        mono = listener._loop_time()  # noqa: SLF001
        if items and listener._handle_items(items, self.peer, now, mono):  # noqa: SLF001
            self.last_frame = mono
        if not self._closing:
            listener._charge(self.peer, items, nbytes, mono)  # noqa: SLF001
        if self.session.buffered:
            self._arm_flush()
        elif self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None

    def eof_received(self) -> bool | None:
        self._flush(final=True)
        return None  # close our side too

    def pause_writing(self) -> None:
        # The peer does not read its replies: stop reading it until it does.
        self._write_paused = True
        self._update_reading()
        if self._stall_timer is None and not self._closing:
            loop = asyncio.get_running_loop()
            self._stall_timer = loop.call_later(
                self.listener.limits.write_stall_timeout, self._stalled
            )

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        for timer in (
            self._flush_timer, self._identify_timer, self._resume_timer, self._stall_timer
        ):  # fmt: skip
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._identify_timer = self._resume_timer = self._stall_timer = None
        self.listener._connection_lost(self)  # noqa: SLF001
        _LOGGER.debug("Port %s: %s disconnected (%s)", self.listener.port, self.peer.address, exc)

    # -- from the listener ------------------------------------------------------------------

    def identified(self) -> None:
        """The connection named its device: it may stay past the identify limit."""
        if self.is_identified:
            return
        self.is_identified = True
        if self._identify_timer is not None:
            self._identify_timer.cancel()
            self._identify_timer = None
        self.listener._identified(self)  # noqa: SLF001

    def throttle(self, delay: float) -> None:
        """Over budget: stop reading for `delay` seconds; close a peer that never stops."""
        if self._closing or self.transport is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._throttled_since is None:
            self._throttled_since = now
        elif now - self._throttled_since > self.listener.limits.abuse_timeout:
            self.close_for(
                "over the message budget",
                f"it stayed over its message budget for {self.listener.limits.abuse_timeout:.0f} s",
            )
            return
        if self._resume_timer is not None:
            self._resume_timer.cancel()
        self._resume_timer = loop.call_later(delay, self._resume)
        self._update_reading()

    def within_budget(self) -> None:
        """The budget has refilled: a throttled stretch (a buffered upload) has ended."""
        self._throttled_since = None

    def close_for(self, reason: str, why: str) -> None:
        """Close the connection for abuse, with one rate-limited line per reason."""
        if self._closing:
            return
        self._closing = True
        listener = self.listener
        listener._closed(reason)  # noqa: SLF001 - same module
        identities = ", ".join(self.peer.links) or "no identity"
        listener._log.warning(  # noqa: SLF001
            reason,
            "Port %s: closing the connection from %s (%s): %s",
            listener.port,
            self.peer.host,
            identities,
            why,
        )
        if self.transport is not None:
            self.transport.abort()

    def abort(self) -> None:
        """Close at once (stop, idle sweep)."""
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    # -- internals --------------------------------------------------------------------------

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self._closing or transport.is_closing():
            return
        if self._write_paused or self._resume_timer is not None:
            if transport.is_reading():
                transport.pause_reading()
        elif not transport.is_reading():
            transport.resume_reading()

    def _resume(self) -> None:
        self._resume_timer = None
        self._update_reading()

    def _identify_expired(self) -> None:
        self._identify_timer = None
        if not self.is_identified:
            self.close_for(
                "did not identify",
                f"it sent no frame naming a tracker within "
                f"{self.listener.limits.identify_timeout:.0f} s",
            )

    def _stalled(self) -> None:
        self._stall_timer = None
        self.close_for(
            "does not read",
            f"it has not read its replies for {self.listener.limits.write_stall_timeout:.0f} s",
        )

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or self._closing or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.listener.limits.write_buffer_max:
            self.close_for(
                "does not read",
                f"over {self.listener.limits.write_buffer_max} bytes of replies wait unread",
            )

    def _arm_flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        loop = asyncio.get_running_loop()
        self._flush_timer = loop.call_later(IDLE_FLUSH_SECONDS, self._flush)

    def _flush(self, *, final: bool = False) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        now = self.listener._clock()  # noqa: SLF001 - same module
        items = self.session.close(now) if final else self.session.flush(now)
        if items:
            listener = self.listener
            mono = listener._loop_time()  # noqa: SLF001
            if listener._handle_items(items, self.peer, now, mono):  # noqa: SLF001
                self.last_frame = mono
            if not self._closing:
                listener._charge(self.peer, items, 0, mono)  # noqa: SLF001


class _UdpEndpoint(asyncio.DatagramProtocol):
    """The UDP socket: each datagram is decoded on its own, replies go to its source."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.listener._datagram(data, addr, self)  # noqa: SLF001 - same module

    def error_received(self, exc: Exception) -> None:
        _LOGGER.debug("Port %s: UDP error %s", self.listener.port, exc)


__all__ = [
    "COMMAND_TIMEOUT",
    "DEFAULT_LIMITS",
    "CommandEncodeError",
    "CommandRejectedError",
    "CommandTimeoutError",
    "Link",
    "Listener",
    "ListenerError",
    "ListenerLimits",
    "ListenerStats",
    "NotConnectedError",
    "ResourceFigures",
]
