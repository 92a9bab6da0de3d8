"""The decoder CLI (interfaces.md §2): inputs, modes, output fields and exit status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import io
import json
import subprocess
import sys

import pytest

from custom_components.tk970.protocol.__main__ import main

from .helpers import jt808_fragments, tkstar_batch
from .vectors import load

GT06_LOGIN = "78780d01086471700328358100093f040d0a"
GT06_STATUS = "7878131340b2fa000201040000000000011c00400e550d0a"
GPS103_LOGIN = b"##,imei:359586015829802,A;".hex()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict]]:
    """Run the CLI in-process; return the exit status and the JSON lines."""
    status = main(["decode", *argv])
    out = capsys.readouterr().out
    return status, [json.loads(line) for line in out.splitlines()]


def test_datagram_mode_each_input_alone(capsys: pytest.CaptureFixture[str]) -> None:
    """Each argument is a datagram from a new connection, so the GT06 login is not carried."""
    status, lines = run([GT06_LOGIN, GT06_STATUS], capsys)
    assert status == 0
    assert [line["type"] for line in lines] == ["login", "heartbeat"]
    assert lines[0]["protocol"] == "gt06"
    assert lines[0]["device_id"] == "864717003283581"
    assert lines[0]["ack"] == "78780501000955940d0a"
    assert lines[0]["checksum_ok"] is True
    assert "device_id" not in lines[1]


def test_stream_mode_carries_the_login(capsys: pytest.CaptureFixture[str]) -> None:
    """--stream: successive reads of one connection; split inputs join; identity carries over."""
    data = GT06_LOGIN + GT06_STATUS
    status, lines = run(["--stream", data[:8], data[8:30], data[30:]], capsys)
    assert status == 0
    assert [line["type"] for line in lines] == ["login", "heartbeat"]
    assert lines[1]["device_id"] == "864717003283581"


def test_stream_mode_reports_an_incomplete_tail(capsys: pytest.CaptureFixture[str]) -> None:
    """An incomplete frame at the end of --stream input is an error with its bytes."""
    status, lines = run(["--stream", GT06_LOGIN + GT06_STATUS[:20]], capsys)
    assert status == 1
    assert lines[0]["type"] == "login"
    assert lines[1] == {
        "error": "incomplete frame at the end of the stream",
        "hex": GT06_STATUS[:20],
    }


def test_whitespace_and_0x_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    """Hex may contain whitespace and a 0x prefix."""
    spaced = "0x" + " ".join(GT06_LOGIN[i : i + 2] for i in range(0, len(GT06_LOGIN), 2))
    status, lines = run([spaced], capsys)
    assert status == 0
    assert lines[0]["type"] == "login"


def test_errors_go_on_and_set_the_status(capsys: pytest.CaptureFixture[str]) -> None:
    """Junk yields an error object with the skipped bytes, then decoding goes on."""
    status, lines = run(["deadbeef" + GT06_LOGIN, "zz", GPS103_LOGIN], capsys)
    assert status == 1
    assert lines[0] == {"error": "bytes before any known frame start", "hex": "deadbeef"}
    assert lines[1]["type"] == "login"
    assert "error" in lines[2]
    assert lines[3]["protocol"] == "gps103"
    assert lines[3]["ack"] == b"LOAD".hex()


def test_jt808_utc_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """--jt808-utc reads JT808 times as UTC instead of GMT+8."""
    frame = (
        "7e0200002c0135112211220007000000000000000300d5a9a8004c4b40000000000000"
        "261124160000300114310109"
    )
    payload = bytes.fromhex(frame[2:])
    checksum = 0
    for byte in payload:
        checksum ^= byte
    data = frame + f"{checksum:02x}7e"
    _, gmt8 = run([data], capsys)
    _, utc = run(["--jt808-utc", data], capsys)
    assert gmt8[0]["time"] == "2026-11-24T08:00:00+00:00"
    assert utc[0]["time"] == "2026-11-24T16:00:00+00:00"


def test_stream_times_do_not_depend_on_the_clock(capsys: pytest.CaptureFixture[str]) -> None:
    """Pasted JT808 reports are not live: the CLI never re-learns the device clock from them."""
    from simulator import Fix, frames

    now = datetime.now(UTC).replace(microsecond=0)
    report = frames.jt808_location("013511221122", 1, Fix(time=now, latitude=1, longitude=2))
    utc_device = frames.jt808_location(
        "013511221122", 2, Fix(time=now, latitude=1, longitude=2), utc_offset=timedelta(0)
    )
    _, lines = run(["--stream", report.hex(), utc_device.hex(), utc_device.hex()], capsys)
    assert [line["time"] for line in lines] == [
        now.isoformat(),
        (now - timedelta(hours=8)).isoformat(),
        (now - timedelta(hours=8)).isoformat(),
    ]


def test_stdin_lines(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Without arguments, one input per line from standard input."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{GT06_LOGIN}\n\n{GPS103_LOGIN}\n"))
    status, lines = run([], capsys)
    assert status == 0
    assert [line["protocol"] for line in lines] == ["gt06", "gps103"]


def test_module_entry_point() -> None:
    """`python -m custom_components.tk970.protocol decode` works as a real process."""
    result = subprocess.run(
        [sys.executable, "-m", "custom_components.tk970.protocol", "decode", GT06_LOGIN],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["device_id"] == "864717003283581"


def test_odometer_in_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    """`odometer_km` (interfaces.md §2): JT808 item 0x01, 0.1 km (jt808.jsonl line 28)."""
    frame = next(v for v in load("jt808") if v.line == 28).raw.hex()
    status, lines = run([frame], capsys)
    assert status == 0
    assert lines[0]["odometer_km"] == pytest.approx(2335.9)


def test_sub_packaged_message(capsys: pytest.CaptureFixture[str]) -> None:
    """--stream joins the fragments of a sub-packaged JT808 batch into its positions; as
    separate datagrams each fragment is answered and its message reported lost."""
    body, bodies = tkstar_batch()
    fragments = [frame.hex() for frame in jt808_fragments(body)]
    status, lines = run(["--stream", *fragments], capsys)
    assert status == 0
    positions = [line for line in lines if line["type"] in ("location", "alarm")]
    assert len(positions) == len(bodies)
    assert all(line["ack"] for line in lines[:2])
    status, lines = run(fragments[:1], capsys)
    assert status == 1
    assert lines[0]["type"] == "other"
    assert lines[0]["ack"]
    assert "2 of 3 fragments missing" in lines[1]["error"]
