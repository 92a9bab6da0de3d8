"""The listener's bounds: every limit a stranger on the internet could otherwise grow.

Each default is a named constant with the reason for its number; `ListenerLimits` gathers them
so that a test, the benchmark or the gateway can change one (`Listener(limits=...)`). Also here:
raising the open-files limit the connection cap depends on, and asking the kernel for the UDP
receive buffer. README's security section lists these defaults.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import logging
import os
import socket

_LOGGER = logging.getLogger(__name__)

#: Concurrent TCP connections: a fleet of 1,000 trackers, reconnects and strangers, well
#: within what one process can hold. Clamped below the open-files limit at start.
MAX_CONNECTIONS = 5_000
#: File descriptors left to the rest of the process (database, HTTP, other integrations).
FD_HEADROOM = 512
#: Connections that have not identified yet, in all: trackers that did identify keep at least
#: the rest of MAX_CONNECTIONS however many strangers connect.
MAX_UNIDENTIFIED = 2_500
#: ... and per source address. A carrier's NAT puts many trackers behind one address, but a
#: tracker identifies in its first frame, within seconds; only strangers hold silent sockets.
MAX_UNIDENTIFIED_PER_HOST = 128
#: Seconds a new TCP connection has to send a frame that names its device, or it is closed.
IDENTIFY_TIMEOUT = 60.0
#: Identities one TCP connection or UDP address may claim: one tracker, with room for firmware
#: that names itself differently in some frames. More from a TCP connection close it.
MAX_IDENTITIES_PER_PEER = 4
#: Live sessions claiming one identity: the tracker, a stale connection it has not closed yet,
#: a duplicate. A further claim closes the session whose last valid frame is the oldest.
MAX_SESSIONS_PER_IDENTITY = 4
#: UDP addresses remembered (identified ones only), least recently heard dropped first.
MAX_UDP_PEERS = 4_096
#: Message budget per peer (TCP connection or UDP address) and per identity: a tracker sends a
#: frame every few seconds; the burst lets a day of buffered records (8,640 at 10 s) through
#: in a few minutes. Over budget, a TCP peer is not read (TCP slows the sender, nothing is
#: lost) and a UDP peer's datagrams are dropped, until the budget has refilled.
MESSAGE_RATE = 50.0
MESSAGE_BURST = 1_000.0
#: What a read costs beyond its messages: one message's worth per this many bytes, so a peer
#: streaming bytes that never make a frame spends its budget too (tracker frames are smaller).
BYTES_PER_MESSAGE = 256
#: A TCP peer held back by its budget for this long, without once saving up half the burst
#: again, is closed as an abuser (a day's upload takes minutes; a flood never ends).
ABUSE_TIMEOUT = 600.0
#: Bytes read from one TCP connection per event-loop turn: with frames of 15 bytes or more,
#: a few hundred frames at most, so no connection holds the loop for more than milliseconds.
READ_SIZE = 4_096
#: Replies waiting for a peer that does not read: reading it pauses above HIGH, resumes below
#: LOW; it is closed above MAX or when it has not read for WRITE_STALL_TIMEOUT seconds.
WRITE_BUFFER_HIGH = 16 * 1024
WRITE_BUFFER_LOW = 4 * 1024
WRITE_BUFFER_MAX = 64 * 1024
WRITE_STALL_TIMEOUT = 60.0
#: The kernel's send buffer per TCP connection (it doubles this): replies to a tracker are tens
#: of bytes, so this only bounds what the kernel holds for a peer that does not read, and lets
#: the limits above notice it soon.
TCP_SEND_BUFFER = 16 * 1024
#: A TCP connection without a decoded frame this long is closed: trackers send a heartbeat every
#: few minutes, so this clears half-open connections and peers trickling bytes of no frame.
TCP_IDLE_TIMEOUT = 30 * 60.0
#: A UDP peer silent this long is forgotten: its NAT mapping has long expired, so a command sent
#: to that address would not arrive.
UDP_PEER_TIMEOUT = 30 * 60.0
#: UDP receive buffer asked of the kernel: a burst of every tracker reporting at once (1,000
#: datagrams take about 1 MiB of kernel memory) must not overflow it. The kernel may grant
#: less (net.core.rmem_max); the granted size is logged at start.
UDP_RECEIVE_BUFFER = 2 * 1024 * 1024
#: How often idle connections and UDP peers are swept.
SWEEP_INTERVAL = 60.0
#: Lines a peer can cause (bad bytes, limits hit): at most one per reason in this many seconds.
LOG_INTERVAL = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerLimits:
    """Every bound the listener keeps; the defaults are the module constants above."""

    max_connections: int = MAX_CONNECTIONS
    fd_headroom: int = FD_HEADROOM
    max_unidentified: int = MAX_UNIDENTIFIED
    max_unidentified_per_host: int = MAX_UNIDENTIFIED_PER_HOST
    identify_timeout: float = IDENTIFY_TIMEOUT
    max_identities_per_peer: int = MAX_IDENTITIES_PER_PEER
    max_sessions_per_identity: int = MAX_SESSIONS_PER_IDENTITY
    max_udp_peers: int = MAX_UDP_PEERS
    message_rate: float = MESSAGE_RATE
    message_burst: float = MESSAGE_BURST
    bytes_per_message: int = BYTES_PER_MESSAGE
    abuse_timeout: float = ABUSE_TIMEOUT
    read_size: int = READ_SIZE
    write_buffer_high: int = WRITE_BUFFER_HIGH
    write_buffer_low: int = WRITE_BUFFER_LOW
    write_buffer_max: int = WRITE_BUFFER_MAX
    write_stall_timeout: float = WRITE_STALL_TIMEOUT
    tcp_send_buffer: int = TCP_SEND_BUFFER
    tcp_idle_timeout: float = TCP_IDLE_TIMEOUT
    udp_peer_timeout: float = UDP_PEER_TIMEOUT
    udp_receive_buffer: int = UDP_RECEIVE_BUFFER
    sweep_interval: float = SWEEP_INTERVAL
    log_interval: float = LOG_INTERVAL


#: What a Listener built without `limits` uses (tests replace it to shorten timeouts).
DEFAULT_LIMITS = ListenerLimits()


@dataclass(slots=True, frozen=True)
class ResourceFigures:
    """What `start` found and set: the numbers behind the connection cap."""

    max_connections: int
    open_files_soft: int
    open_files_soft_before: int
    open_files_hard: int
    open_files_in_use: int
    udp_receive_buffer: int | None  #: bytes the kernel granted (None: no UDP socket)


def raise_open_files_limit(wanted: int) -> tuple[int, int, int, int]:
    """Raise the soft open-files limit towards `wanted` as far as the hard limit allows.

    Returns (soft limit before, soft limit now, hard limit, descriptors in use).
    """
    try:
        import resource  # noqa: PLC0415 - POSIX only

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 1024, 1024, 1024, 0
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 0
    before = soft
    target = wanted + in_use
    if soft != resource.RLIM_INFINITY and soft < target:
        new = target if hard == resource.RLIM_INFINITY else min(target, hard)
        if new > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
                soft = new
            except (OSError, ValueError) as err:
                _LOGGER.debug("Cannot raise the open-files limit to %d: %s", new, err)
    infinite = 1 << 30
    return (
        before if before != resource.RLIM_INFINITY else infinite,
        soft if soft != resource.RLIM_INFINITY else infinite,
        hard if hard != resource.RLIM_INFINITY else infinite,
        in_use,
    )


def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for `size` bytes of receive buffer; past net.core.rmem_max only with privileges.

    0 asks for nothing: the kernel's default (net.core.rmem_default) stays.
    """
    if size <= 0:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    # Linux reports twice what was set (the kernel's bookkeeping share included).
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if force is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < size:
        with contextlib.suppress(OSError):  # needs CAP_NET_ADMIN; without it, keep what we got
            sock.setsockopt(socket.SOL_SOCKET, force, size)
