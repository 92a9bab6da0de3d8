"""What waits to be published: one ordered queue, bounded for reports, kept until the broker acks.

Pure bookkeeping, no I/O. Everything the gateway publishes goes through one FIFO so the broker
sees it in the order it happened (a tracker's discovery before its first state, each state
after the one before). An entry leaves the queue only when the broker confirmed it (QoS 1
PUBACK); entries sent on a connection that broke are sent again, in order, on the next one.

Reports (state snapshots and alarm events) are bounded: `room_for(n)` tells the gateway whether
it may accept a report of `n` publications; when it may not, the gateway does not acknowledge
the report to the tracker (which keeps it and sends it again) and counts it as refused. An
acknowledged report is therefore never dropped. Control messages (discovery, availability,
ownership) are not kept while the broker is away: the gateway publishes them afresh, from its
current state, on every connect.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Publication:
    """One MQTT publish."""

    topic: str
    payload: bytes
    retain: bool = False
    report: bool = False  #: counts against the report bound
    qos: int = 1
    done: bool = field(default=False, repr=False)


@dataclass(slots=True)
class OutboxStats:
    """Counters for the gateway's stats topic and the benchmark."""

    published: int = 0  #: confirmed by the broker
    reports_published: int = 0  #: of those, reports (states and alarms a tracker's report made)
    refused: int = 0  #: reports not accepted because the buffer was full
    resent: int = 0  #: publications sent again after a connection broke


class Outbox:
    """The ordered queue of publications, with the in-flight window of the current connection."""

    def __init__(self, capacity: int) -> None:
        """Hold at most `capacity` report publications (control messages are not counted)."""
        self.capacity = capacity
        self.stats = OutboxStats()
        self._queue: deque[Publication] = deque()
        self._sent = 0  #: the first `_sent` entries went out on the current connection
        self._reports = 0  #: report entries in the queue
        self.connected = False

    def __len__(self) -> int:
        """Entries waiting or in flight."""
        return len(self._queue)

    @property
    def reports(self) -> int:
        """Report publications waiting or in flight."""
        return self._reports

    def room_for(self, count: int) -> bool:
        """Tell whether a report of `count` publications may be accepted now."""
        return self._reports + count <= self.capacity

    def refuse(self) -> None:
        """Count a report that was not accepted."""
        self.stats.refused += 1

    def put(self, publication: Publication) -> None:
        """Queue a publication (a report must have been checked with `room_for`)."""
        if not publication.report and not self.connected:
            return  # published afresh on the next connect
        self._queue.append(publication)
        if publication.report:
            self._reports += 1

    def put_first(self, publications: list[Publication]) -> None:
        """Queue control messages ahead of everything not yet sent (a fresh connection)."""
        if not self.connected:
            return
        for publication in reversed(publications):
            self._queue.insert(self._sent, publication)

    def next_unsent(self) -> Publication | None:
        """The next publication to send on this connection, marked as sent."""
        queue = self._queue
        while self._sent < len(queue):
            publication = queue[self._sent]
            self._sent += 1
            if not publication.done:
                return publication
        return None

    @property
    def has_unsent(self) -> bool:
        """Tell whether anything waits to be sent on this connection."""
        return self._sent < len(self._queue)

    def confirmed(self, publication: Publication) -> None:
        """The broker confirmed `publication`: drop it, and every confirmed one before it."""
        publication.done = True
        self.stats.published += 1
        if publication.report:
            self.stats.reports_published += 1
        queue = self._queue
        while queue and queue[0].done and self._sent:
            head = queue.popleft()
            self._sent -= 1
            if head.report:
                self._reports -= 1

    def connection_lost(self) -> None:
        """The connection broke: what was sent and not confirmed goes out again, in order."""
        self.connected = False
        sent = list(self._queue)[: self._sent]
        self.stats.resent += sum(1 for p in sent if p.report and not p.done)
        self._sent = 0
        # Control messages are rebuilt on the next connect from the current state; reports stay.
        kept = deque(p for p in self._queue if p.report and not p.done)
        self._queue = kept
        self._reports = len(kept)
