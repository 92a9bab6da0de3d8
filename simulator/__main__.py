"""Run simulated TK-Star trackers against a server: `python -m simulator --help`.

    python -m simulator --port 8888 --protocol gt06 --count 3 --sos-every 300

Each tracker drives the route (built in, or `--gpx`), reports every `--interval` seconds and
obeys relay commands. On a terminal, press `s` for SOS on every tracker, `q` to quit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from pathlib import Path
import signal
import sys

from .device import PROTOCOLS, SimulatedTracker
from .route import BUILTIN_LOOP, Drive, Route, load_gpx


def luhn_complete(body: str) -> str:
    """Append the Luhn check digit to 14 digits."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


def imeis(first: str, count: int) -> list[str]:
    """`count` valid IMEIs starting at `first` (its first 14 digits, counted up)."""
    base = int(first[:14])
    return [luhn_complete(f"{base + offset:014d}") for offset in range(count)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--protocol", choices=PROTOCOLS, default="jt808")
    parser.add_argument("--transport", choices=("tcp", "udp"), default="tcp")
    parser.add_argument("--imei", default="359586015829802", help="first tracker's IMEI")
    parser.add_argument("--count", type=int, default=1, help="number of trackers")
    parser.add_argument("--gpx", type=Path, help="drive this GPX track instead of the loop")
    parser.add_argument("--speed", type=float, default=40.0, help="cruising speed, km/h")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between reports")
    parser.add_argument("--sos-every", type=float, help="raise SOS every this many seconds")
    parser.add_argument("--silent", action="store_true", help="never answer commands")
    return parser.parse_args(argv)


async def _keyboard(drives: list[Drive], stop: asyncio.Event) -> None:
    """`s` presses SOS on every tracker, `q` quits (only on a terminal)."""
    if not sys.stdin.isatty():
        return
    import termios  # noqa: PLC0415 - POSIX terminals only
    import tty  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    descriptor = sys.stdin.fileno()
    saved = termios.tcgetattr(descriptor)
    tty.setcbreak(descriptor)
    keys: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(descriptor, lambda: keys.put_nowait(sys.stdin.read(1)))
    try:
        while not stop.is_set():
            key = await keys.get()
            if key.lower() == "s":
                for drive in drives:
                    drive.request_sos()
            elif key.lower() == "q":
                stop.set()
    finally:
        loop.remove_reader(descriptor)
        termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)


async def run(args: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    """Drive the trackers until `stop` is set (or Ctrl-C / SIGTERM)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    waypoints = load_gpx(args.gpx) if args.gpx else BUILTIN_LOOP
    route = Route(waypoints, args.speed)
    drives = []
    for imei in imeis(args.imei, args.count):
        tracker = SimulatedTracker(
            imei,
            protocol=args.protocol,
            transport=args.transport,
            host=args.host,
            port=args.port,
            answer_commands=not args.silent,
        )
        drives.append(Drive(tracker, route, interval=args.interval, sos_every=args.sos_every))
    tasks = [asyncio.create_task(drive.run()) for drive in drives]
    keyboard = asyncio.create_task(_keyboard(drives, stop))
    logging.getLogger(__name__).info(
        "%d %s tracker(s) over %s to %s:%s; press s for SOS, q to quit",
        len(drives),
        args.protocol,
        args.transport,
        args.host,
        args.port,
    )
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [task for task in tasks if task.done() and not task.cancelled() and task.exception()]
    for task in [*tasks, keyboard, stopping]:
        task.cancel()
    await asyncio.gather(*tasks, keyboard, stopping, return_exceptions=True)
    for drive in drives:
        await drive.tracker.close()
    if failed:
        error = failed[0].exception()
        assert error is not None
        raise error


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    main()
