"""Decode throughput: frames/s, as a ratio to npm `gt06` measured in the same run.

    .venv/bin/python bench/decode.py [--seconds 2] [--rounds 3]

The GT06 comparison uses the captured GT06 vectors that npm `gt06` 1.0.12 can parse (it knows
login, location 0x12, status 0x13 and alarm 0x16 and skips the CRC); we decode the very same
frames through a full `Session` (framing, CRC check, decode, reply bytes), one frame per read as
a TCP connection delivers them. The mixed rate runs every family's clean uplink vectors the same
way. Each side is timed `rounds` times, interleaved, and the best round counts. npm `gt06` is
installed into bench/node_modules (ignored by git) on first use.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
import json
from pathlib import Path
import shutil
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from custom_components.tk970.protocol import Decoded, Session  # noqa: E402
from tests.protocol.vectors import FAMILIES, load  # noqa: E402

BENCH = Path(__file__).resolve().parent
NPM_PACKAGE = "gt06@1.0.12"
NOW = datetime(2026, 11, 24, tzinfo=UTC)


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


def clean_uplinks(family: str) -> list[bytes]:
    """Uplink vectors that decode in a stream without any skipped bytes."""
    frames = []
    for vector in load(family):
        if not vector.uplink:
            continue
        session = Session()
        items = session.feed(vector.raw, NOW) + session.close(NOW)
        if items and all(isinstance(item, Decoded) for item in items):
            frames.append(vector.raw)
    return frames


def python_rate(frames: list[bytes], seconds: float) -> float:
    """Frames per second through one session per family, one frame per read."""
    sessions: dict[bytes, Session] = {}
    count = 0
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        for frame in frames:
            session = sessions.get(frame[:1])
            if session is None:
                session = sessions[frame[:1]] = Session()
            session.feed(frame, NOW)
        count += len(frames)
    return count / (time.perf_counter() - start)


def node_rate(frames: list[bytes], seconds: float) -> tuple[list[int], float]:
    """npm gt06's frames per second on the frames it can parse, and which those are."""
    result = subprocess.run(
        ["node", str(BENCH / "gt06_baseline.js")],
        input=json.dumps({"frames": [f.hex() for f in frames], "seconds": seconds}),
        capture_output=True,
        text=True,
        check=True,
        cwd=BENCH,
    )
    data = json.loads(result.stdout)
    return data["ok"], float(data["rate"])


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_npm_gt06()

    gt06_all = clean_uplinks("gt06")
    ok, _ = node_rate(gt06_all, 0.05)
    gt06 = [gt06_all[index] for index in ok]
    mixed = [frame for family in FAMILIES for frame in clean_uplinks(family)]

    npm_best = ours_best = mixed_best = 0.0
    for _ in range(args.rounds):
        npm_best = max(npm_best, node_rate(gt06, args.seconds)[1])
        ours_best = max(ours_best, python_rate(gt06, args.seconds))
        mixed_best = max(mixed_best, python_rate(mixed, args.seconds))

    print(f"GT06 frames npm gt06 parses: {len(gt06)} of {len(gt06_all)} clean GT06 vectors")
    print(f"  npm gt06 {NPM_PACKAGE.split('@')[1]} (no CRC check): {npm_best:12,.0f} frames/s")
    print(f"  tk970 Session (CRC verified, replies built): {ours_best:12,.0f} frames/s")
    print(f"  ratio tk970 / npm gt06: {ours_best / npm_best:.2f}x")
    print(f"Mixed protocols ({len(mixed)} clean uplink vectors of {', '.join(FAMILIES)}):")
    print(f"  tk970 Session: {mixed_best:12,.0f} frames/s ({mixed_best / npm_best:.2f}x npm gt06)")


if __name__ == "__main__":
    main()
