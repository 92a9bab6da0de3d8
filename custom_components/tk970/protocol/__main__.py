"""Decoder CLI (interfaces.md §2): hex in, one JSON object per decoded frame out.

    python -m custom_components.tk970.protocol decode [--stream] [--jt808-utc] [HEX ...]

For users who paste bytes from the debug log, and for outside checks. Each input is one datagram
from a new connection unless `--stream` makes all inputs successive reads of one TCP connection.
Exit status 1 when any error object was printed.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
import json
import re
import sys
from typing import TextIO

from .context import JT808_DEFAULT_OFFSET
from .session import Decoded, Item, Session

_NOT_HEX = re.compile(r"\s+|0[xX]")


def _parse_hex(text: str) -> bytes | None:
    cleaned = _NOT_HEX.sub("", text)
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        return None


def _render(items: Iterable[Item], out: TextIO) -> bool:
    """Print items as JSON lines; return True when any was an error."""
    failed = False
    for item in items:
        if isinstance(item, Decoded):
            record = item.message.as_dict()
            record["ack"] = item.ack.hex() if item.ack is not None else None
        else:
            failed = True
            record = {"error": item.reason, "hex": item.raw.hex()}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return failed


def decode(inputs: Iterable[str], *, stream: bool, jt808_offset: timedelta, out: TextIO) -> int:
    """Decode hex inputs and print the results; return the exit status."""
    failed = False
    session = Session(jt808_utc_offset=jt808_offset, learn_jt808_offset=False) if stream else None
    for text in inputs:
        if not text.strip():
            continue
        data = _parse_hex(text)
        if data is None:
            failed |= _render_error(f"invalid hex input: {text.strip()[:80]}", out)
            continue
        now = datetime.now(UTC)
        if session is not None:
            failed |= _render(session.feed(data, now), out)
            continue
        # A datagram stands alone: a fragment of a JT808 sub-packaged message in it, without
        # the rest, is reported as lost.
        datagram = Session(datagram=True, jt808_utc_offset=jt808_offset, learn_jt808_offset=False)
        failed |= _render(datagram.feed(data, now) + datagram.close(now), out)
    if session is not None:
        failed |= _render(session.close(datetime.now(UTC)), out)
    return 1 if failed else 0


def _render_error(reason: str, out: TextIO) -> bool:
    out.write(json.dumps({"error": reason, "hex": ""}) + "\n")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI."""
    parser = argparse.ArgumentParser(
        prog="python -m custom_components.tk970.protocol",
        description="Decode TK-Star tracker frames (JT808, GT06, H02, GPS103, Watch).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    decoder = commands.add_parser(
        "decode",
        help="decode hex frames to JSON lines",
        description="Each input is one datagram from a new connection, unless --stream.",
    )
    decoder.add_argument(
        "hex", nargs="*", help="hex bytes (whitespace and 0x allowed); default: stdin, one per line"
    )
    decoder.add_argument(
        "--stream", action="store_true", help="inputs are successive reads of one TCP connection"
    )
    decoder.add_argument(
        "--jt808-utc", action="store_true", help="JT808 devices report UTC (default: GMT+8)"
    )
    args = parser.parse_args(argv)
    inputs: Iterable[str] = args.hex or sys.stdin
    offset = timedelta(0) if args.jt808_utc else JT808_DEFAULT_OFFSET
    return decode(inputs, stream=args.stream, jt808_offset=offset, out=sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
