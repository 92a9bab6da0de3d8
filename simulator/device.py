"""A simulated TK-Star tracker: connects over TCP or UDP and behaves like the real device.

It logs in the way its protocol family does and waits for the answer, reports positions,
heartbeats and alarms, and obeys relay commands honestly: it answers cut and restore (unless
told to stay silent), refuses to cut above 20 km/h as Concox firmware does, and shows the new
relay state in its next status. It answers the other commands as its family does: a position
request with a position, a report interval with its confirmation, an SOS acknowledgement by
dropping the SOS, and the text commands it knows (`TEXT_ANSWERS`) with their text; an unknown
text command is refused where the family can say so. The integration tests and `scripts/demo`
both drive it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
import logging
import re

from . import frames, radio
from .frames import Fix

_LOGGER = logging.getLogger(__name__)

PROTOCOLS = ("jt808", "gt06", "h02", "gps103", "watch")
#: The SMS-style text commands the simulated firmware knows, and its answers.
TEXT_ANSWERS = {
    "STATUS#": "Battery:90%,GPRS:Link Up,GSM Signal Level:Strong,GPS:Fixed,ACC:OFF",
    "VERSION#": "[VERSION]TK970_V1.2.3 2026/01/15",
    "PARAM#": "IMEI:{imei};TIMER:{interval};SOS:;CENTER:;",
}
#: What the firmware says to a text command it does not know (a refusal by its words).
UNKNOWN_TEXT_ANSWER = "Command error!"
_H02_COMMANDS = ("S20", "S26", "S71", "D1", "SCF")
#: Concox firmware (and this simulator) refuse to cut the engine faster than this.
MAX_CUT_SPEED = 20.0
#: How long the simulator waits for a server answer it needs (login, registration).
ANSWER_TIMEOUT = 10.0

_GPS103_DOWNLINK = re.compile(rb"\*\*,imei:\d+,[^*]*|LOAD|ON")
_JT808_CUT = {0xF0: True, 0xF1: False, 0x64: True, 0x65: False}


@dataclass(slots=True)
class Downlink:
    """One message the server sent."""

    raw: bytes
    kind: str  #: "ack", "command" or "other"
    detail: str = ""


@dataclass
class SimulatedTracker:
    """One tracker. `identity` is the IMEI (JT808 sends its last 12 digits as terminal id)."""

    identity: str
    protocol: str = "jt808"
    transport: str = "tcp"
    host: str = "127.0.0.1"
    port: int = 8888
    answer_commands: bool = True
    fix: Fix = field(
        default_factory=lambda: Fix(time=datetime.now(UTC), latitude=52.52, longitude=13.405)
    )
    #: JT808 device clock offset from UTC (the standard's GMT+8)
    jt808_offset: timedelta = timedelta(hours=8)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    received: list[Downlink] = field(default_factory=list)
    #: the simulated engine: True while the relay cuts it
    relay: bool = False
    #: report the cells and access points of the simulated radio world (`radio.py`)
    radio: bool = True
    #: the report interval the server last set, in seconds
    interval: int = 30

    def __post_init__(self) -> None:
        """Prepare the connection state."""
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol}")
        self._serial = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._buffer = b""
        self._arrived = asyncio.Event()

    @property
    def terminal(self) -> str:
        """The JT808 terminal id: the IMEI's last 11 digits, zero-padded to 12."""
        return self.identity[-11:].rjust(12, "0")

    # -- connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection (TCP) or the socket (UDP) and start reading answers."""
        if self.transport == "tcp":
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self._task = asyncio.create_task(self._read_tcp())
        else:
            loop = asyncio.get_running_loop()
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpClient(self), remote_addr=(self.host, self.port)
            )

    async def close(self) -> None:
        """Hang up."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
            self._writer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    async def send(self, data: bytes) -> None:
        """Write raw bytes to the server."""
        if self._writer is not None:
            self._writer.write(data)
            await self._writer.drain()
        elif self._udp is not None:
            self._udp.sendto(data)
        else:
            raise ConnectionError("not connected")

    def _next_serial(self) -> int:
        self._serial = (self._serial + 1) & 0xFFFF
        return self._serial

    # -- what the tracker says --------------------------------------------------------------

    async def login(self) -> None:
        """Log in as the family does, and wait for the server's answer where one is due."""
        if self.protocol == "jt808":
            before = len(self.received)
            await self.send(frames.jt808_register(self.terminal, self._next_serial()))
            answer = await self.wait_for(lambda d: d.detail == "8100", start=before)
            code = frames.jt808_unframe(answer.raw)[2][3:].decode("ascii", "replace")
            before = len(self.received)
            await self.send(frames.jt808_authenticate(self.terminal, self._next_serial(), code))
            await self.wait_for(lambda d: d.detail == "8001", start=before)
        elif self.protocol == "gt06":
            before = len(self.received)
            await self.send(frames.gt06_login(self.identity, self._next_serial()))
            await self.wait_for(lambda d: d.detail == "01", start=before)
        elif self.protocol == "gps103":
            before = len(self.received)
            await self.send(frames.gps103_login(self.identity))
            await self.wait_for(lambda d: d.detail == "LOAD", start=before)
        elif self.protocol == "watch":
            before = len(self.received)
            await self.heartbeat()
            await self.wait_for(lambda d: d.detail == "LK", start=before)
        else:
            await self.heartbeat()

    async def heartbeat(self) -> None:
        """Send the family's keep-alive."""
        fix = self._current()
        data = {
            "jt808": lambda: frames.jt808_heartbeat(self.terminal, self._next_serial()),
            "gt06": lambda: frames.gt06_heartbeat(fix, self._next_serial()),
            "h02": lambda: frames.h02_heartbeat(self.identity, fix.battery_percent),
            "gps103": lambda: frames.gps103_heartbeat(self.identity),
            "watch": lambda: frames.watch_heartbeat(self.identity, fix.battery_percent),
        }[self.protocol]()
        await self.send(data)

    async def report(self, **changes: object) -> None:
        """Move (or change status) and send a location report.

        The cells and access points are those of the new position unless given.
        """
        if changes:
            changes.setdefault("cells", None)
            changes.setdefault("wifi", None)
            self.fix = replace(self.fix, **changes)  # type: ignore[arg-type]
        await self.send(self.location_frame(self._current()))

    async def report_without_fix(
        self, latitude: float, longitude: float, *, wifi: bool = True
    ) -> None:
        """Report from (latitude, longitude) without a GNSS fix: only what the radio sees.

        The report carries the cells (and, with `wifi`, the access points) of that place; its
        coordinates are the last fix's, as devices send them (JT808), or absent (GT06 0x28).
        The tracker's own fix is left as it was.
        """
        fix = replace(
            self._current(),
            valid=False,
            cells=tuple(radio.cells_at(latitude, longitude)),
            wifi=tuple(radio.access_points_at(latitude, longitude)) if wifi else (),
        )
        await self.send(self.location_frame(fix))

    def location_frame(self, fix: Fix) -> bytes:
        """The bytes of a location report for `fix`."""
        if self.protocol == "jt808":
            return frames.jt808_location(self.terminal, self._next_serial(), fix, self.jt808_offset)
        if self.protocol == "gt06":
            if not fix.valid and fix.cells:
                return frames.gt06_lbs(fix, self._next_serial())
            return frames.gt06_location(fix, self._next_serial())
        if self.protocol == "h02":
            return frames.h02_position(self.identity, fix)
        if self.protocol == "watch":
            return frames.watch_position(self.identity, fix)
        return frames.gps103_report(self.identity, fix)

    async def sos(self) -> None:
        """Press the SOS button."""
        await self._alarm(sos=True)

    async def vibration(self) -> None:
        """Report a vibration alarm."""
        await self._alarm(vibration=True)

    async def _alarm(self, *, sos: bool = False, vibration: bool = False) -> None:
        fix = replace(self._current(), sos=sos, vibration=vibration)
        if self.protocol == "jt808":
            data = frames.jt808_location(self.terminal, self._next_serial(), fix, self.jt808_offset)
        elif self.protocol == "gt06":
            data = frames.gt06_alarm(fix, 0x01 if sos else 0x03, self._next_serial())
        elif self.protocol == "h02":
            data = frames.h02_position(self.identity, fix)
        elif self.protocol == "watch":
            # The watch has no vibration alarm: an `AL` frame with the status word.
            data = frames.watch_position(self.identity, fix, "AL")
        else:
            data = frames.gps103_report(self.identity, fix, "help me" if sos else "sensor alarm")
        await self.send(data)

    async def clear_alarms(self) -> None:
        """Report a status showing no alarm (where the family has a status word)."""
        self.fix = replace(self.fix, sos=False, vibration=False)
        if self.protocol == "gt06":
            await self.send(frames.gt06_heartbeat(self._current(), self._next_serial()))
        else:
            await self.report()

    async def upload_buffered(self, fixes: list[Fix]) -> None:
        """Send fixes recorded while offline (a tunnel), oldest first."""
        if self.protocol == "jt808":
            await self.send(
                frames.jt808_batch(self.terminal, self._next_serial(), fixes, self.jt808_offset)
            )
            return
        for fix in fixes:
            await self.send(self.location_frame(fix))

    def _current(self) -> Fix:
        return self.with_radio(replace(self.fix, time=self.clock(), relay=self.relay))

    def with_radio(self, fix: Fix) -> Fix:
        """`fix` with the cells and access points of its position filled in where unset."""
        if not self.radio:
            return replace(fix, cells=fix.cells or (), wifi=fix.wifi or ())
        if fix.cells is None:
            fix = replace(fix, cells=tuple(radio.cells_at(fix.latitude, fix.longitude)))
        if fix.wifi is None:
            fix = replace(fix, wifi=tuple(radio.access_points_at(fix.latitude, fix.longitude)))
        return fix

    # -- what the server says ---------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[Downlink], bool],
        *,
        start: int = 0,
        within: float = ANSWER_TIMEOUT,
    ) -> Downlink:
        """Wait for a server message matching `predicate` (among those from index `start`)."""
        async with asyncio.timeout(within):
            while True:
                for item in self.received[start:]:
                    if predicate(item):
                        return item
                self._arrived.clear()
                await self._arrived.wait()

    async def _read_tcp(self) -> None:
        assert self._reader is not None
        try:
            while data := await self._reader.read(4096):
                await self._received(data)
        except (ConnectionError, OSError):
            return

    async def _received(self, data: bytes) -> None:
        self._buffer += data
        for message in self._split():
            item = self._classify(message)
            self.received.append(item)
            self._arrived.set()
            if item.kind == "command":
                await self._obey(item)

    def _split(self) -> list[bytes]:
        """Cut the server's byte stream into messages."""
        buf, out = self._buffer, list[bytes]()
        if self.protocol == "jt808":
            out, buf = frames.jt808_split(buf)
        elif self.protocol == "gt06":
            while len(buf) >= 5 and buf[:2] in (b"\x78\x78", b"\x79\x79"):
                size = buf[2] + 5 if buf[0] == 0x78 else int.from_bytes(buf[2:4], "big") + 6
                if len(buf) < size:
                    break
                out.append(buf[:size])
                buf = buf[size:]
        elif self.protocol == "h02":
            while (end := buf.find(b"#")) >= 0:
                out.append(buf[: end + 1].strip())
                buf = buf[end + 1 :]
        elif self.protocol == "watch":
            while (start := buf.find(b"[")) >= 0 and (end := buf.find(b"]", start)) > 0:
                out.append(buf[start : end + 1])
                buf = buf[end + 1 :]
        else:
            out = _GPS103_DOWNLINK.findall(buf)
            buf = b""
        self._buffer = buf
        return out

    def _classify(self, raw: bytes) -> Downlink:
        if self.protocol == "jt808":
            message_id = frames.jt808_unframe(raw)[0]
            kind = "ack" if message_id in (0x8001, 0x8100) else "command"
            return Downlink(raw, kind, f"{message_id:04x}")
        if self.protocol == "gt06":
            if frames.gt06_command(raw) is not None:
                return Downlink(raw, "command", "80")
            return Downlink(raw, "ack", f"{raw[3]:02x}")
        if self.protocol == "h02":
            parsed = frames.h02_command(raw)
            if parsed is not None and parsed[0] in _H02_COMMANDS:
                return Downlink(raw, "command", parsed[0])
            return Downlink(raw, "ack", parsed[0] if parsed else "")
        if self.protocol == "watch":
            content = frames.watch_command(raw) or ""
            word = content.partition(",")[0]
            kind = "ack" if word in ("LK", "AL", "INIT", "TKQ", "TKQ2") else "command"
            return Downlink(raw, kind, word)
        if raw in (b"LOAD", b"ON"):
            return Downlink(raw, "ack", raw.decode())
        parsed_gps103 = frames.gps103_command(raw)
        return Downlink(raw, "command", parsed_gps103[0] if parsed_gps103 else "")

    async def _obey(self, item: Downlink) -> None:
        """Execute a server command, and answer it as the real device would."""
        wanted = self._relay_request(item)
        if wanted is None:
            await self._obey_other(item)
            return
        allowed = not (wanted and self.fix.speed_kmh > MAX_CUT_SPEED)
        if allowed:
            self.relay = wanted
        _LOGGER.info(
            "Simulated %s %s: relay %s %s",
            self.protocol,
            self.identity,
            "cut" if wanted else "restore",
            "done" if allowed else "refused (moving too fast)",
        )
        if not self.answer_commands:
            return
        await self._answer(item, wanted, allowed)

    def _relay_request(self, item: Downlink) -> bool | None:
        if self.protocol == "jt808":
            message_id, _, body = frames.jt808_unframe(item.raw)
            if message_id == 0x8105 and body:
                return _JT808_CUT.get(body[0])
            return None
        if self.protocol == "gt06":
            parsed = frames.gt06_command(item.raw)
            text = parsed[1].upper() if parsed else ""
            if text.startswith(("RELAY,1", "DYD")):
                return True
            if text.startswith(("RELAY,0", "HFYD")):
                return False
            return None
        if self.protocol == "h02":
            h02 = frames.h02_command(item.raw)
            if h02 and h02[0] == "S20" and len(h02[2]) >= 2:
                return h02[2][1] == "1"
            return None
        if item.detail in ("J", "K"):
            return item.detail == "J"
        return None

    async def _answer(self, item: Downlink, wanted: bool, allowed: bool) -> None:
        fix = self._current()
        if self.protocol == "jt808":
            _, command_serial, _ = frames.jt808_unframe(item.raw)
            await self.send(
                frames.jt808_general_response(
                    self.terminal, self._next_serial(), command_serial, 0x8105, 0 if allowed else 1
                )
            )
            await self.send(self.location_frame(fix))  # the new relay bit, as devices do
        elif self.protocol == "gt06":
            parsed = frames.gt06_command(item.raw)
            flag = parsed[0] if parsed else 0
            if not allowed:
                text = "Speed is too fast, the command is not executed!"
            elif wanted:
                text = "Cut off the fuel supply: Success!"
            else:
                text = "Restore fuel supply: Success!"
            await self.send(frames.gt06_command_reply(flag, text, self._next_serial()))
        elif self.protocol == "h02":
            h02 = frames.h02_command(item.raw)
            command_time = h02[1] if h02 else "000000"
            state = "1,1" if self.relay else "1,0"
            await self.send(frames.h02_confirmation(self.identity, fix, "S20", state, command_time))
        # GPS103 devices send no confirmation at all.

    # -- other commands -----------------------------------------------------------------------

    def _text_answer(self, text: str) -> str | None:
        """The firmware's answer to an SMS-style command; None: it does not know it."""
        text = text.strip().upper()
        if text == "WHERE#":
            return frames.gt06_where_text(self._current())
        if (match := re.fullmatch(r"TIMER,(\d+)#", text)) is not None:
            self.interval = int(match[1])
            return f"TIMER set ok. Now data upload period is {self.interval} seconds."
        answer = TEXT_ANSWERS.get(text)
        return answer.format(imei=self.identity, interval=self.interval) if answer else None

    async def _obey_other(self, item: Downlink) -> None:
        """Answer a command that is not a relay switch, as the family's firmware does."""
        if not self.answer_commands:
            return
        handler = {
            "jt808": self._obey_jt808,
            "gt06": self._obey_gt06,
            "h02": self._obey_h02,
            "gps103": self._obey_gps103,
            "watch": self._obey_watch,
        }[self.protocol]
        _LOGGER.info("Simulated %s %s: command %s", self.protocol, self.identity, item.detail)
        await handler(item)

    async def _obey_jt808(self, item: Downlink) -> None:
        message_id, serial, body = frames.jt808_unframe(item.raw)
        if message_id == 0x8201:  # location query: the position, quoting the query
            await self.send(
                frames.jt808_location_response(
                    self.terminal, self._next_serial(), serial, self._current(), self.jt808_offset
                )
            )
            return
        result = 3  # unsupported
        if message_id == 0x8103 and len(body) >= 10 and body[1:5] == b"\x00\x00\x00\x29":
            self.interval = int.from_bytes(body[6:10], "big")  # 0x0029 report interval
            result = 0
        elif message_id == 0x8203:  # alarm confirmation: bit 0 is the SOS
            if len(body) >= 6 and body[5] & 1:
                self.fix = replace(self.fix, sos=False)
            result = 0
        elif message_id == 0x8300:  # text: the SMS command parser answers in text
            answer = self._text_answer(body[1:].decode("gbk", "replace"))
            if answer is not None:
                await self.send(
                    frames.jt808_text_response(self.terminal, self._next_serial(), serial, answer)
                )
                return
        await self.send(
            frames.jt808_general_response(
                self.terminal, self._next_serial(), serial, message_id, result
            )
        )

    async def _obey_gt06(self, item: Downlink) -> None:
        parsed = frames.gt06_command(item.raw)
        if parsed is None:
            return
        flag, text = parsed
        answer = self._text_answer(text) or UNKNOWN_TEXT_ANSWER
        await self.send(frames.gt06_command_reply(flag, answer, self._next_serial()))

    async def _obey_h02(self, item: Downlink) -> None:
        parsed = frames.h02_command(item.raw)
        if parsed is None:
            return
        code, command_time, params = parsed
        if code == "S26":  # status query: a LINK status
            time = self.clock().astimezone(UTC)
            await self.send(
                f"*HQ,{self.identity},LINK,{time:%H%M%S},20,9,{self.fix.battery_percent},0,0,"
                f"{time:%d%m%y},{frames.h02_status(self._current())}#".encode()
            )
            return
        if code == "S71" and len(params) >= 2 and params[1].isdigit():
            self.interval = int(params[1])
        await self.send(
            frames.h02_confirmation(
                self.identity, self._current(), code, ",".join(params), command_time
            )
        )

    async def _obey_gps103(self, item: Downlink) -> None:
        # GPS103 firmware never answers a command; it only does what it says.
        parsed = frames.gps103_command(item.raw)
        if parsed is None:
            return
        code, params = parsed
        if code == "B":
            await self.report()
        elif code == "E":
            self.fix = replace(self.fix, sos=False)
        elif code == "C" and params and (match := re.fullmatch(r"(\d+)([smh])", params[0])):
            self.interval = int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]

    async def _obey_watch(self, item: Downlink) -> None:
        content = frames.watch_command(item.raw) or ""
        word, _, value = content.partition(",")
        if word == "UPLOAD" and value.isdigit():
            self.interval = int(value)
        elif word not in ("CR", "VERNO"):
            return  # the watch ignores what it does not know
        reply = "VERNO,G29_BASE_V1.00_2026.01.15" if word == "VERNO" else word
        await self.send(frames.watch_frame(self.identity, reply))
        if word == "CR":
            await self.report()


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self, tracker: SimulatedTracker) -> None:
        self.tracker = tracker

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        task = asyncio.get_running_loop().create_task(self.tracker._received(data))  # noqa: SLF001
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Task[None]] = set()
