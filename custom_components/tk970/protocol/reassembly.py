"""JT808 sub-package reassembly: fragments in, whole message bodies out, losses reported.

A long JT/T 808 message (a `0x0704` blind-area batch after a tunnel, a long text) is sent as
numbered fragments (header bit 13, protocols.md §3.3): total count and index from 1, and
consecutive serial numbers (JT/T 808-2013 §7.12). This module keeps the fragments one session
has received until a message is complete, in index order whatever order they came in, and
gives up on a message that stops growing. What it holds is bounded three ways, because a
stranger can announce any count: fragments per message (`MAX_FRAGMENTS`), bytes per session
(`MAX_BYTES`, which also bounds the number of messages in progress) and time since the last
progress (`TIMEOUT`). Whatever it gives up on is reported as lost, never dropped silently.

Sans I/O like the rest of the package: the caller passes the time, and `jt808` builds the
replies (`0x8001` per fragment, `0x8003` for missing ones) from what `settle` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

#: Fragments one message may have. A `0x0704` batch of 50 points with TK-Star `0xEB` items is
#: about 5 KiB, i.e. 5 or 6 fragments of at most 1023 bytes; photos (`0x0801`) need hundreds
#: and are not reassembled.
MAX_FRAGMENTS = 32
#: Body bytes one session may hold in unfinished messages (32 fragments of 1023 bytes).
MAX_BYTES = 32 * 1024
#: A message whose last fragment came this long ago is given up (JT808 terminals retransmit
#: within their TCP timeout, 10 s by default, three times).
TIMEOUT = timedelta(seconds=60)
#: Completed messages remembered, so that a fragment retransmitted after completion is only
#: acknowledged and does not start a message that can never complete.
_DONE_MEMORY = 8


class Key(NamedTuple):
    """What identifies one sub-packaged message: id, fragment count, first fragment's serial."""

    message_id: int
    total: int
    first_serial: int


class Fragment(NamedTuple):
    """One received fragment: its body, the whole frame (for `raw`) and its checksum verdict."""

    body: bytes
    frame: bytes
    checksum_ok: bool


class Whole(NamedTuple):
    """A completed message: the bodies joined in index order, and its fragments' frames."""

    key: Key
    body: bytes
    frames: bytes
    checksum_ok: bool


class Lost(NamedTuple):
    """A message given up: why, how many fragments it lacked, and the frames that did come."""

    key: Key
    missing: int
    reason: str
    frames: bytes


@dataclass(slots=True)
class _Partial:
    key: Key
    updated: datetime
    fragments: dict[int, Fragment] = field(default_factory=dict)
    size: int = 0
    requested: bool = False

    def missing(self) -> list[int]:
        return [index for index in range(1, self.key.total + 1) if index not in self.fragments]

    def frames(self) -> bytes:
        return b"".join(self.fragments[index].frame for index in sorted(self.fragments))


@dataclass(slots=True)
class Reassembly:
    """The unfinished sub-packaged messages of one session."""

    _partials: dict[Key, _Partial] = field(default_factory=dict)
    _lost: list[Lost] = field(default_factory=list)
    _done: dict[Key, datetime] = field(default_factory=dict)
    _size: int = 0

    @property
    def busy(self) -> bool:
        """Tell whether `settle` has anything to do (messages in progress or losses to report)."""
        return bool(self._partials or self._lost)

    def add(self, key: Key, index: int, fragment: Fragment, now: datetime) -> Whole | None:
        """Keep one fragment (1-based `index`); return the message once it is complete.

        A duplicate, or a fragment of a message completed moments ago, is kept nowhere: the
        device retransmits what it believes lost, and only needs the acknowledgement again.
        """
        if key in self._done:
            return None
        if key.total > MAX_FRAGMENTS:
            if index == 1:  # one report per message, not per fragment
                reason = (
                    f"JT808 sub-packaged {key.message_id:#06x} message of {key.total} fragments "
                    f"is over the reassembly limit of {MAX_FRAGMENTS}: not decoded"
                )
                self._lost.append(Lost(key, key.total, reason, fragment.frame))
            return None
        partial = self._partials.get(key)
        if partial is None:
            partial = self._partials[key] = _Partial(key, now)
        if index in partial.fragments:
            return None
        size = len(fragment.body)
        self._make_room(size, keep=key)
        if size > MAX_BYTES - self._size:
            self._give_up(partial, "is over the reassembly limit of 32 KiB")
            return None
        partial.fragments[index] = fragment
        partial.size += size
        partial.updated = now
        self._size += size
        if len(partial.fragments) < key.total:
            return None
        del self._partials[key]
        self._size -= partial.size
        self._remember(key, now)
        ordered = [partial.fragments[i] for i in range(1, key.total + 1)]
        return Whole(
            key,
            b"".join(f.body for f in ordered),
            b"".join(f.frame for f in ordered),
            all(f.checksum_ok for f in ordered),
        )

    def settle(
        self, now: datetime, *, final: bool, can_request: bool = True
    ) -> tuple[list[tuple[Key, list[int]]], list[Lost]]:
        """Decide what the session does about unfinished messages, after a read or at its end.

        Returns the retransmission requests due (a message whose last fragment came but that
        lacks others is asked for them once, when `can_request`) and the messages given up:
        those idle for `TIMEOUT`, or all of them when `final` (the connection closed).
        """
        requests: list[tuple[Key, list[int]]] = []
        for partial in list(self._partials.values()):
            if final or now - partial.updated >= TIMEOUT:
                self._give_up(partial, "ended with the connection" if final else "timed out")
            elif can_request and not partial.requested and partial.key.total in partial.fragments:
                partial.requested = True
                partial.updated = now  # give the retransmission its own time
                requests.append((partial.key, partial.missing()))
        for key, when in list(self._done.items()):
            if now - when >= TIMEOUT:
                del self._done[key]
        lost, self._lost = self._lost, []
        return requests, lost

    def _make_room(self, size: int, *, keep: Key) -> None:
        """Give up the oldest other messages until `size` more bytes fit."""
        for partial in list(self._partials.values()):
            if self._size + size <= MAX_BYTES:
                return
            if partial.key != keep:
                self._give_up(partial, "was pushed out by newer fragments")

    def _give_up(self, partial: _Partial, why: str) -> None:
        self._partials.pop(partial.key, None)
        self._size -= partial.size
        missing = partial.missing()
        key = partial.key
        reason = (
            f"JT808 sub-packaged {key.message_id:#06x} message {why}, "
            f"{len(missing)} of {key.total} fragments missing"
        )
        self._lost.append(Lost(key, len(missing), reason, partial.frames()))

    def _remember(self, key: Key, now: datetime) -> None:
        self._done[key] = now
        while len(self._done) > _DONE_MEMORY:
            del self._done[next(iter(self._done))]
