"""Summarise py-spy's raw (collapsed) samples: where Home Assistant's time goes.

    python bench/profile_top.py samples.txt [--limit 40] [--filter tk970]

Prints, per function, the share of samples in which it is on the stack (inclusive) and at the
top (self), busiest first; idle samples (the event loop waiting in `select`/`epoll`) are left
out of the shares and counted apart.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

IDLE = (
    "select (selectors.py",
    "epoll",
    "_worker (concurrent/futures/thread.py",
    "wait (threading.py",
)


def main() -> None:
    """Read the samples, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--filter", default="", help="only functions whose frame contains this")
    parser.add_argument("--self", action="store_true", help="sort by self time")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    busy = idle = 0
    for line in args.samples.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any(marker in frames[-1] for marker in IDLE):
            idle += count
            continue
        busy += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    print(f"busy samples {busy}, idle {idle}")
    ranking = own if args.self else inclusive
    shown = 0
    for frame, _ in ranking.most_common():
        if args.filter not in frame:
            continue
        print(f"{inclusive[frame] / busy:6.1%} {own[frame] / busy:6.1%}  {frame[:150]}")
        shown += 1
        if shown >= args.limit:
            break


if __name__ == "__main__":
    main()
