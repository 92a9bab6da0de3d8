"""A real Mosquitto on a free loopback port, with a throw-away configuration (tests, bench).

Debian's mosquitto: installed, or unpacked without root into .mosquitto/ by scripts/setup. The
broker can be stopped and started again on the same port; persistence keeps retained messages
and persistent sessions across a restart, as a production broker keeps them.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
import hashlib
import os
from pathlib import Path
import secrets
import shutil
import socket
import subprocess

from tests.common import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def mosquitto_binary() -> str:
    """Debian's mosquitto: installed, or unpacked by scripts/setup into .mosquitto/."""
    for candidate in (
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        str(ROOT / ".mosquitto" / "usr" / "sbin" / "mosquitto"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("mosquitto is not installed: run scripts/setup (it installs it)")


def _hashed(password: str) -> str:
    """A password as mosquitto 2's password file keeps it (PBKDF2-SHA512, `$7$`)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return f"$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass
class Mosquitto:
    """One broker process on 127.0.0.1."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    #: TLS on the listener: (certificate chain, key) files
    tls: tuple[Path, Path] | None = None
    #: users and passwords; anonymous clients are refused when given
    users: dict[str, str] | None = None

    def __post_init__(self) -> None:
        """Write the throw-away configuration."""
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.users else 'true'}",
            "persistence true",
            f"persistence_location {self.folder}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # keep root: the folder belongs to root
        if self.tls is not None:
            lines += [f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"]
        if self.users:
            passwords = self.folder / "passwords"
            passwords.write_text(
                "".join(f"{user}:{_hashed(secret)}\n" for user, secret in self.users.items())
            )
            lines.append(f"password_file {passwords}")
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    async def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        environment = dict(os.environ)
        unpacked = [
            str(folder)
            for base in (ROOT / ".mosquitto" / "lib", ROOT / ".mosquitto" / "usr" / "lib")
            for folder in base.glob("*-linux-gnu")
        ]
        if unpacked:  # scripts/setup unpacked the package without root
            environment["LD_LIBRARY_PATH"] = ":".join(unpacked)
        self.process = subprocess.Popen(  # noqa: ASYNC220 - a long-running child, not waited on
            [mosquitto_binary(), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "mosquitto.log").open("ab"),
            env=environment,
        )

        def accepting() -> bool:
            with socket.socket() as probe:
                probe.settimeout(0.5)
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        await wait_for(accepting, within=20)

    async def stop(self) -> None:
        """Stop the broker (SIGTERM: it saves its persistence file) and wait for it."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        for _ in range(200):
            if process.poll() is not None:
                return
            await asyncio.sleep(0.05)
        process.kill()
        process.wait()
