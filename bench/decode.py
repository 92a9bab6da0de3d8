"""Decoding speed: the full path on representative streams, as ratios to npm `gt06` (issue 10).

    python bench/decode.py [--devices 100] [--seconds 0.5] [--rounds 20]

Full path: a `Session` per device fed one frame per read, as a TCP connection delivers a
tracker's reports: framing, checksum (CRC-ITU / XOR), decoding into `Message`s and the reply
bytes. The streams (`bench/streams.py`) are, per device, one login, eight locations and one
heartbeat: GT06 `0x01`/`0x12`/`0x13`, and JT808 `0x0102`/`0x0200` with TK-Star `0xEB`
items/`0x0002`. npm `gt06` 1.0.12 parses the very same GT06 frames in the same order, with one
parser per device (it checks no CRC and builds its reply only for login and status).

Both sides count CPU time, not wall time (the machine is shared: a process waiting for a core
is not slower); each is timed `rounds` times in short runs, alternating (npm gt06 stays up in
one Node process). Printed: the best run of each, and the median over the rounds of each
round's own ratio (a round's runs follow each other closely, under the same load), for the
ratio tk970 / npm gt06 on the GT06 stream (target at least 2) and the JT808 stream's cost per
frame over the GT06 one (target at most 1.5). The mixed rate over every
clean uplink vector of the shared captures is printed for continuity with earlier figures. npm
`gt06` is installed into bench/node_modules (ignored by git) on first use.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
import json
from pathlib import Path
import shutil
from statistics import median
import subprocess
import sys
import time
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.streams import START, gt06_stream, jt808_stream  # noqa: E402
from custom_components.tk970.protocol import Decoded, Session  # noqa: E402
from tests.protocol.vectors import FAMILIES, load  # noqa: E402

BENCH = Path(__file__).resolve().parent
NPM_PACKAGE = "gt06@1.0.12"
#: The streams' reports are live: their times are those of the minutes around NOW.
NOW = START + timedelta(seconds=90)

type Stream = list[tuple[int, bytes]]


def ensure_npm_gt06() -> None:
    """Install npm gt06 into bench/node_modules unless it is there."""
    if (BENCH / "node_modules" / "gt06" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("bench: npm is needed for the baseline (node and npm from the distribution)")
    subprocess.run(
        [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(BENCH),
         NPM_PACKAGE],
        check=True,
        capture_output=True,
    )  # fmt: skip


def python_rate(stream: Stream, seconds: float) -> float:
    """Frames per second through one Session per device, one frame per read.

    The sessions are the listener's (JT808 clock learning on, fast path on) and live across
    passes, as a tracker's connection lives across its reports: what is timed is decoding, not
    opening connections. npm gt06 keeps one parser per device the same way.
    """
    devices = 1 + max(device for device, _ in stream)
    feeds = [Session().feed for _ in range(devices)]
    reads = [(feeds[device], frame) for device, frame in stream]  # as npm's (parser, frame)
    now = NOW
    count = 0
    start = time.process_time()
    end = start + seconds
    while time.process_time() < end:
        for feed, frame in reads:
            feed(frame, now)
        count += len(reads)
    return count / (time.process_time() - start)


class NpmGt06:
    """npm gt06 in a Node process that stays up, so that runs of both sides can alternate."""

    def __init__(self, stream: Stream) -> None:
        self._process = subprocess.Popen(
            ["node", str(BENCH / "gt06_baseline.js")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=BENCH,
        )
        frames = [frame.hex() for _, frame in stream]
        devices = [device for device, _ in stream]
        self.parsed = self._ask(json.dumps({"frames": frames, "devices": devices}))["ok"]

    def rate(self, seconds: float) -> float:
        """npm gt06's frames per second of CPU time, over `seconds` of it."""
        return float(self._ask(f"run {seconds}")["rate"])

    def close(self) -> None:
        """Stop the Node process."""
        self._ask_nothing("quit")
        self._process.wait(timeout=30)

    def _ask(self, line: str) -> dict[str, Any]:
        self._ask_nothing(line)
        assert self._process.stdout is not None
        answer: dict[str, Any] = json.loads(self._process.stdout.readline())
        return answer

    def _ask_nothing(self, line: str) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()


def check_streams(gt06: Stream, jt808: Stream) -> None:
    """Every frame decodes without a skip, and logins, locations and heartbeats get replies."""
    for name, stream in (("gt06", gt06), ("jt808", jt808)):
        sessions: dict[int, Session] = {}
        for device, frame in stream:
            items = sessions.setdefault(device, Session()).feed(frame, NOW)
            if len(items) != 1 or not isinstance(items[0], Decoded) or items[0].ack is None:
                sys.exit(f"bench: the {name} stream does not decode cleanly: {items!r}")


def clean_uplinks(family: str) -> Stream:
    """Uplink vectors that decode in a stream without any skipped bytes, one device each."""
    frames = []
    for vector in load(family):
        if not vector.uplink:
            continue
        session = Session()
        items = session.feed(vector.raw, NOW) + session.close(NOW)
        if items and all(isinstance(item, Decoded) for item in items):
            frames.append((len(frames), vector.raw))
    return frames


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--no-mixed", action="store_true", help="skip the vectors mix")
    args = parser.parse_args()
    ensure_npm_gt06()

    gt06 = gt06_stream(args.devices)
    jt808 = jt808_stream(args.devices)
    check_streams(gt06, jt808)
    npm = NpmGt06(gt06)
    if len(npm.parsed) != len(gt06):
        sys.exit(f"bench: npm gt06 parses {len(npm.parsed)} of {len(gt06)} GT06 stream frames")
    mixed = [item for family in FAMILIES for item in clean_uplinks(family)]

    npm.rate(1.0)  # let the JIT settle
    rounds: dict[str, list[float]] = {"npm": [], "gt06": [], "jt808": [], "mixed": []}
    for _ in range(args.rounds):
        rounds["npm"].append(npm.rate(args.seconds))
        rounds["gt06"].append(python_rate(gt06, args.seconds))
        rounds["jt808"].append(python_rate(jt808, args.seconds))
        if not args.no_mixed:
            rounds["mixed"].append(python_rate(mixed, args.seconds))
    npm.close()
    best = {name: max(rates, default=0.0) for name, rates in rounds.items()}
    # Each round measures the three in a row, under the same load: the median of the rounds'
    # own ratios is the steadier figure on a shared machine.
    speedup = median(
        ours / theirs for ours, theirs in zip(rounds["gt06"], rounds["npm"], strict=True)
    )
    jt808_cost = median(
        ours / theirs for ours, theirs in zip(rounds["gt06"], rounds["jt808"], strict=True)
    )

    per_device = len(gt06) // args.devices
    print(
        f"Streams: {args.devices} devices x {per_device} frames (login, 8 locations, heartbeat);"
        f" {args.rounds} rounds of {args.seconds:g} s of CPU time each"
    )
    print("  frames/s, best run:")
    print(f"    npm gt06 {NPM_PACKAGE.split('@')[1]}, GT06 stream: {best['npm']:10,.0f}")
    print(f"    tk970 Session, GT06 stream:   {best['gt06']:10,.0f}")
    print(f"    tk970 Session, JT808 stream:  {best['jt808']:10,.0f}")
    print(
        f"  per frame, best run: GT06 {1e6 / best['gt06']:.2f} us, JT808"
        f" {1e6 / best['jt808']:.2f} us, npm gt06 {1e6 / best['npm']:.2f} us"
    )
    print(
        f"  tk970 / npm gt06 on the GT06 stream: {speedup:.2f}x (median of rounds;"
        f" {best['gt06'] / best['npm']:.2f}x best to best)  target >= 2"
    )
    print(
        f"  JT808 / GT06 cost per frame:         {jt808_cost:.2f}x (median of rounds;"
        f" {best['gt06'] / best['jt808']:.2f}x best to best)  target <= 1.5"
    )
    if not args.no_mixed:
        print(f"Mixed: {len(mixed)} clean uplink vectors of {', '.join(FAMILIES)}:")
        print(
            f"  tk970 Session: {best['mixed']:10,.0f} frames/s"
            f" ({best['mixed'] / best['npm']:.2f}x npm gt06 on its stream)"
        )


if __name__ == "__main__":
    main()
