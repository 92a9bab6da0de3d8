"""Broker credentials and TLS: the gateway logs in over `mqtts://` with a private CA."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
import ipaddress
from pathlib import Path
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import pytest

from gateway.__main__ import build_parser, settings_from
from gateway.app import Gateway
from simulator import SimulatedTracker
from tests.common import IMEI, free_port, wait_for
from tests.gateway.conftest import Observer
from tests.gateway.mosquitto import Mosquitto

pytestmark = pytest.mark.usefixtures("socket_enabled")

USERS = {"gateway": "gw-secret", "homeassistant": "ha-secret"}


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 signed by it: (ca, chain, key) files."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tk970 test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ca_file, chain_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return ca_file, chain_file, key_file


@pytest.fixture
async def secure_broker(tmp_path: Path) -> AsyncIterator[tuple[Mosquitto, Path]]:
    """A broker with TLS and passwords only; and its CA file."""
    ca_file, chain, key = _certificates(tmp_path / "tls")
    broker = Mosquitto(tmp_path / "mosquitto", tls=(chain, key), users=USERS)
    await broker.start()
    yield broker, ca_file
    await broker.stop()


async def _gateway(port: int, *arguments: str) -> Gateway:
    settings = settings_from(
        build_parser().parse_args(
            ["--port", str(free_port()), "--bind", "127.0.0.1", "--instance", "secure",
             "--allow", IMEI, "--no-learn-positions", *arguments]
        )
    )  # fmt: skip
    settings.mqtt.retry_min = settings.mqtt.retry_max = 0.2
    gateway = Gateway(settings)
    await gateway.start()
    return gateway


async def test_tls_and_credentials(secure_broker: tuple[Mosquitto, Path]) -> None:
    """Right password and CA: published. Wrong password, unknown CA: never connected."""
    broker, ca_file = secure_broker
    context = ssl.create_default_context(cafile=str(ca_file))
    observer = Observer(
        broker.port, ["tk970/#"], username="homeassistant", password=USERS["homeassistant"],
        tls_context=context,
    )  # fmt: skip
    await observer.start()
    url = f"mqtts://gateway:{USERS['gateway']}@127.0.0.1:{broker.port}"
    refused: list[Gateway] = []
    try:
        refused.append(await _gateway(broker.port, "--mqtt", url.replace("gw-secret", "wrong"),
                                      "--ca-file", str(ca_file)))  # fmt: skip
        refused.append(await _gateway(broker.port, "--mqtt", url))  # the system CAs only
        gateway = await _gateway(broker.port, "--mqtt", url, "--ca-file", str(ca_file))
        try:
            await wait_for(lambda: gateway.broker.connected, within=20)
            tracker = SimulatedTracker(IMEI, protocol="gt06", port=gateway.settings.port)
            await tracker.connect()
            await tracker.login()
            await tracker.report(latitude=1.25, longitude=2.5)
            await observer.wait(f"tk970/{IMEI}/state", lambda m: m.json().get("latitude") == 1.25)
            await tracker.close()
        finally:
            await gateway.stop()
        assert all(not g.broker.connected and g.broker.connects == 0 for g in refused)
    finally:
        for g in refused:
            await g.stop()
        await observer.stop()


def test_tls_options_reach_the_context(tmp_path: Path) -> None:
    """--tls-insecure turns verification off; a client certificate is loaded."""
    ca_file, chain, key = _certificates(tmp_path)
    parser = build_parser()
    insecure = settings_from(parser.parse_args(["--mqtt", "mqtts://h", "--tls-insecure"]))
    context = insecure.mqtt.tls_context()
    assert context is not None
    assert context.verify_mode is ssl.CERT_NONE
    assert not context.check_hostname
    client = settings_from(
        parser.parse_args(
            ["--mqtt", "mqtts://h", "--ca-file", str(ca_file), "--client-cert", str(chain),
             "--client-key", str(key)]
        )
    )  # fmt: skip
    assert client.mqtt.tls_context() is not None
