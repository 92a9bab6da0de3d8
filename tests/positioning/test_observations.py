"""Normalising what decoders report: cell keys, MACs, signals, and the fix test."""

from __future__ import annotations

from hypothesis import given, strategies as st

from custom_components.tk970.positioning.observations import (
    cell_key,
    dbm,
    format_cell,
    has_fix,
    normalise_mac,
    observe,
    pack_cell,
    pack_mac,
    parse_cell,
    unpack_cell,
    unpack_mac,
)
from custom_components.tk970.protocol import Cell, Message, MessageType, Protocol, WifiAccessPoint


def test_invalid_cells_are_dropped_and_the_serving_cell_stays_first() -> None:
    """Empty slots, impossible codes and filler ids never become keys; duplicates collapse."""
    cells = [
        Cell(mcc=262, mnc=1, lac=0, cid=1234),  # empty slot
        Cell(mcc=262 | 0x8000, mnc=1, lac=4711, cid=27197452, rssi=95),  # GT06 wide-MNC flag
        Cell(mcc=0, mnc=0, lac=10602, cid=20983),  # GPS103: no MCC
        Cell(mcc=262, mnc=1, lac=4711, cid=0xFFFF),
        Cell(mcc=262, mnc=1, lac=0xFFFE, cid=5),
        Cell(mcc=5152, mnc=56, lac=51971, cid=3227364),  # a vendor layout read as cells
        Cell(mcc=262, mnc=1, lac=4711, cid=27197452, rssi=-80),  # the same cell again
        Cell(mcc=262, mnc=1, lac=4711, cid=27197453, rssi=-101),
    ]
    observation = observe(cells, [])
    assert [c.key for c in observation.cells] == [
        (262, 1, 4711, 27197452),
        (262, 1, 4711, 27197453),
    ]
    assert [c.signal for c in observation.cells] == [-95, -101]


def test_access_points_are_normalised() -> None:
    """Case and separators vary by firmware; zero, broadcast and group addresses are no APs."""
    wifi = [
        WifiAccessPoint(mac="AA-BB-CC-DD-EE-01", rssi=60),
        WifiAccessPoint(mac="aa:bb:cc:dd:ee:01", rssi=-50),
        WifiAccessPoint(mac="00:00:00:00:00:00"),
        WifiAccessPoint(mac="ff:ff:ff:ff:ff:ff"),
        WifiAccessPoint(mac="01:00:5e:00:00:01"),
        WifiAccessPoint(mac="nonsense"),
        WifiAccessPoint(mac="b2:86:25:2f:68:fe", rssi=209),
    ]
    observation = observe([], wifi)
    assert [(w.mac, w.signal) for w in observation.wifi] == [
        ("aa:bb:cc:dd:ee:01", -60),
        ("b2:86:25:2f:68:fe", None),
    ]
    assert observation.signature == (
        frozenset(),
        frozenset({"aa:bb:cc:dd:ee:01", "b2:86:25:2f:68:fe"}),
    )


def test_signals() -> None:
    """dBm stays, a positive byte is minus dBm, zero and nonsense are unknown."""
    assert dbm(-71) == -71
    assert dbm(71) == -71
    assert dbm(0) is None
    assert dbm(None) is None
    assert dbm(209) is None


def test_radio_guess() -> None:
    """16-bit ids are GSM, up to 28 bits LTE, more NR."""
    observation = observe(
        [
            Cell(mcc=262, mnc=1, lac=1, cid=65535 - 1),
            Cell(mcc=262, mnc=1, lac=1, cid=27197452),
            Cell(mcc=262, mnc=1, lac=1, cid=1 << 30),
        ],
        [],
    )
    assert [c.radio for c in observation.cells] == ["gsm", "lte", "nr"]


def test_has_fix() -> None:
    """Only a valid GNSS fix away from null island teaches."""
    base = Message(protocol=Protocol.JT808, type=MessageType.LOCATION)
    assert has_fix(base._replace(valid=True, latitude=52.5, longitude=13.4))
    assert not has_fix(base._replace(valid=False, latitude=52.5, longitude=13.4))
    assert not has_fix(base._replace(valid=True, latitude=0.0, longitude=0.0))
    assert not has_fix(base._replace(valid=True))


@given(
    st.integers(1, 999),
    st.integers(0, 999),
    st.integers(1, 0xFFFFFF),
    st.integers(1, (1 << 36) - 1),
)
def test_cell_keys_round_trip(mcc: int, mnc: int, lac: int, cid: int) -> None:
    """Packing and formatting are lossless for every valid key."""
    key = cell_key(mcc, mnc, lac, cid)
    if key is None:
        return
    assert unpack_cell(pack_cell(key)) == key
    assert parse_cell(format_cell(key)) == key


@given(st.binary(min_size=6, max_size=6))
def test_macs_round_trip(raw: bytes) -> None:
    """Any unicast, non-empty MAC survives packing."""
    mac = normalise_mac(raw.hex(":"))
    if mac is None:
        assert raw[0] & 1 or raw in (bytes(6), b"\xff" * 6)
        return
    assert unpack_mac(pack_mac(mac)) == mac


@given(st.text(max_size=30))
def test_any_text_is_a_mac_or_none(text: str) -> None:
    """Garbage in a MAC field never raises."""
    mac = normalise_mac(text)
    assert mac is None or len(mac) == 17
