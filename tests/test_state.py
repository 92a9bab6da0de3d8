"""What a report does to Home Assistant's state: only changes written, device clocks corrected,
state saved within a bound, live values unavailable while a tracker is offline.

Real simulated trackers over TCP into a real Home Assistant, as in test_trackers.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
import logging

from homeassistant.const import (
    EVENT_HOMEASSISTANT_FINAL_WRITE,
    EVENT_STATE_CHANGED,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
)
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.tk970.coordinator import TrackerCoordinator
from custom_components.tk970.store import SAVE_DELAY
from simulator import SimulatedTracker, frames

from .common import (
    IMEI,
    IMEI_2,
    entity_id,
    make_entry,
    saved_state,
    wait_for,
    wait_for_state,
)

pytestmark = pytest.mark.usefixtures("socket_enabled")

type MakeTracker = Callable[..., object]


@pytest.fixture
async def make_tracker(port: int) -> AsyncIterator[MakeTracker]:
    """Build connected simulated trackers for IMEI on the test port; closed at the end."""
    made: list[SimulatedTracker] = []

    async def _make(protocol: str, **kwargs: object) -> SimulatedTracker:
        tracker = SimulatedTracker(IMEI, protocol=protocol, port=port, **kwargs)  # type: ignore[arg-type]
        await tracker.connect()
        await tracker.login()
        made.append(tracker)
        return tracker

    yield _make
    for tracker in made:
        await tracker.close()


@pytest.fixture
def changes(hass: HomeAssistant) -> list[str]:
    """Entity ids of every state change, in order."""
    seen: list[str] = []

    @callback
    def _changed(event: Event) -> None:
        seen.append(event.data["entity_id"])

    hass.bus.async_listen(EVENT_STATE_CHANGED, _changed)
    return seen


def acks(tracker: SimulatedTracker, detail: str) -> int:
    """How many acknowledgements of this kind the tracker received."""
    return sum(1 for item in tracker.received if item.kind == "ack" and item.detail == detail)


async def report(tracker: SimulatedTracker, hass: HomeAssistant, **changes: object) -> None:
    """Send a location report and wait until Home Assistant handled it (its ack came back:
    the listener answers and delivers in the same call)."""
    detail = {"gt06": "22", "jt808": "8001"}[tracker.protocol]
    before = acks(tracker, detail)
    await tracker.report(**changes)
    await wait_for(lambda: acks(tracker, detail) > before)
    await hass.async_block_till_done()


def coordinator_of(entry: MockConfigEntry) -> TrackerCoordinator:
    """The tracker's coordinator."""
    coordinator: TrackerCoordinator = entry.runtime_data
    return coordinator


# -- what is written ------------------------------------------------------------------------------


async def test_a_report_writes_only_what_changed(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker: MakeTracker, changes: list[str]
) -> None:
    """Moving writes the tracker and the speed; the same report again writes nothing at all."""
    tracker: SimulatedTracker = await make_tracker("gt06")  # type: ignore[assignment]
    await report(tracker, hass, latitude=50.0, longitude=8.0, speed_kmh=30.0)
    await tracker.heartbeat()  # the status word: charging, relay ... (a location has none)
    await wait_for(lambda: acks(tracker, "13") == 1)
    changes.clear()
    await report(tracker, hass, latitude=50.001, longitude=8.001, speed_kmh=35.0)
    assert sorted(changes) == sorted(
        [entity_id(hass, "device_tracker", IMEI), entity_id(hass, "sensor", f"{IMEI}_speed")]
    )
    changes.clear()
    for _ in range(2):  # parked: the same place, the same speed, a newer time
        await _one_second_later()
        await report(tracker, hass)
    await tracker.heartbeat()
    await wait_for(lambda: acks(tracker, "13") == 2)
    await hass.async_block_till_done()
    assert changes == []


async def test_a_batch_upload_writes_each_entity_once(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker: MakeTracker, changes: list[str]
) -> None:
    """Buffered fixes in one read are applied in order; the tracker is written once, at the last."""
    tracker: SimulatedTracker = await make_tracker("jt808")  # type: ignore[assignment]
    await report(tracker, hass, latitude=40.0, longitude=3.0)
    changes.clear()
    start = tracker.fix.time
    fixes = [
        frames.Fix(time=start + timedelta(seconds=10 * n), latitude=40.0 + n / 100, longitude=3.0)
        for n in range(1, 6)
    ]
    before = acks(tracker, "8001")
    await tracker.upload_buffered(fixes)
    await wait_for(lambda: acks(tracker, "8001") > before)
    await hass.async_block_till_done()
    tracker_id = entity_id(hass, "device_tracker", IMEI)
    assert changes.count(tracker_id) == 1
    assert hass.states.get(tracker_id).attributes["latitude"] == pytest.approx(40.05)


async def test_last_seen_moves_in_steps_and_is_exact_once_quiet(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker: MakeTracker
) -> None:
    """While a tracker reports, "Last seen" stays put for minutes; on hanging up it is exact."""
    tracker: SimulatedTracker = await make_tracker("gt06")  # type: ignore[assignment]
    last_seen = entity_id(hass, "sensor", f"{IMEI}_last_seen")
    await report(tracker, hass)
    first = hass.states.get(last_seen)
    for _ in range(3):
        await _one_second_later()
        await report(tracker, hass, latitude=tracker.fix.latitude + 0.001)
    assert hass.states.get(last_seen).last_changed == first.last_changed
    heard = coordinator_of(entry).data.last_heard
    assert heard is not None
    await tracker.close()
    state = await wait_for_state(hass, last_seen, lambda s: s.state != first.state)
    assert dt_util.parse_datetime(state.state) == heard.replace(microsecond=0)


# -- unavailable ----------------------------------------------------------------------------------


async def test_a_silent_tracker_goes_offline_and_comes_back(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    make_tracker: MakeTracker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After the offline time, live values are unavailable; the position and alarms stay."""
    tracker: SimulatedTracker = await make_tracker("jt808")  # type: ignore[assignment]
    await report(tracker, hass, latitude=45.0, longitude=7.0, battery_percent=80)
    live = [
        entity_id(hass, "sensor", f"{IMEI}_battery"),
        entity_id(hass, "sensor", f"{IMEI}_speed"),
        entity_id(hass, "binary_sensor", f"{IMEI}_ignition"),
    ]
    kept = [
        entity_id(hass, "device_tracker", IMEI),
        entity_id(hass, "binary_sensor", f"{IMEI}_sos"),
        entity_id(hass, "sensor", f"{IMEI}_last_seen"),
        entity_id(hass, "binary_sensor", f"{IMEI}_connected"),
    ]
    assert hass.states.get(live[0]).state == "80"
    caplog.set_level(logging.INFO, logger="custom_components.tk970")
    caplog.clear()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=29))
    await hass.async_block_till_done()
    assert hass.states.get(live[0]).state == "80"
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=31))
    await hass.async_block_till_done()
    assert [hass.states.get(e).state for e in live] == [STATE_UNAVAILABLE] * 3
    assert all(hass.states.get(e).state != STATE_UNAVAILABLE for e in kept)
    assert hass.states.get(kept[0]).attributes["latitude"] == pytest.approx(45.0)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=90))
    await hass.async_block_till_done()
    assert caplog.text.count("is offline") == 1
    await report(tracker, hass)
    assert hass.states.get(live[0]).state == "80"
    assert caplog.text.count("is online") == 1


# -- device clocks --------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["gt06", "jt808"])
async def test_a_clock_three_hours_behind_does_not_freeze_the_map(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker: MakeTracker, protocol: str
) -> None:
    """A tracker shown at the right time whose clock then runs 3 h behind: its first reports
    are late uploads (the tracker does not jump back), then the error is learned and it moves
    on with corrected times."""
    behind = [timedelta(0)]
    tracker: SimulatedTracker = await make_tracker(  # type: ignore[assignment]
        protocol, clock=lambda: datetime.now(UTC) - behind[0]
    )
    await report(tracker, hass, latitude=30.0, longitude=10.0)
    coordinator = coordinator_of(entry)
    assert coordinator.data.latitude == pytest.approx(30.0)
    behind[0] = timedelta(hours=3)
    await report(tracker, hass, latitude=31.0)
    assert coordinator.data.latitude == pytest.approx(30.0)  # 3 h older than the fix shown
    moved = False
    for step in range(5):
        await _one_second_later()
        await report(tracker, hass, latitude=32.0 + step)
        if coordinator.data.latitude == pytest.approx(32.0 + step):
            moved = True
            break
    assert moved
    fix_time = coordinator.data.position_time
    assert fix_time is not None
    assert abs(fix_time - dt_util.utcnow()) < timedelta(minutes=1)
    await report(tracker, hass, latitude=40.0)
    assert coordinator.data.latitude == pytest.approx(40.0)


@pytest.mark.parametrize("protocol", ["gt06", "jt808"])
async def test_a_clock_1024_weeks_back_is_corrected_at_once(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker: MakeTracker, protocol: str
) -> None:
    """GPS week rollover: dates 19.6 years back are moved forward, and the map follows."""
    tracker: SimulatedTracker = await make_tracker(  # type: ignore[assignment]
        protocol, clock=lambda: datetime.now(UTC) - timedelta(weeks=1024)
    )
    await report(tracker, hass, latitude=-20.0, longitude=-40.0)
    tracker_id = entity_id(hass, "device_tracker", IMEI)
    state = hass.states.get(tracker_id)
    assert state.attributes["latitude"] == pytest.approx(-20.0)
    fix_time = dt_util.parse_datetime(state.attributes["fix_time"])
    assert fix_time is not None
    assert abs(fix_time - dt_util.utcnow()) < timedelta(minutes=1)
    await report(tracker, hass, latitude=-21.0)
    assert hass.states.get(tracker_id).attributes["latitude"] == pytest.approx(-21.0)


async def test_an_untimed_position_never_blocks_a_later_timed_fix(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker: MakeTracker
) -> None:
    """A position stamped on arrival, then a fix whose device time is a little behind that."""
    from custom_components.tk970.protocol import Message, MessageType, PositionSource, Protocol

    tracker: SimulatedTracker = await make_tracker(  # type: ignore[assignment]
        "gt06", clock=lambda: datetime.now(UTC) - timedelta(seconds=20)
    )
    coordinator = coordinator_of(entry)
    assert coordinator.link is not None
    coordinator.async_handle_messages(
        coordinator.link,
        [
            Message(
                protocol=Protocol.GT06,
                type=MessageType.LBS,
                latitude=52.6,
                longitude=13.5,
                position_source=PositionSource.LBS,
            )
        ],
    )
    assert coordinator.data.latitude == pytest.approx(52.6)
    assert coordinator.data.position_stamped
    await report(tracker, hass, latitude=52.7, longitude=13.6)
    assert coordinator.data.latitude == pytest.approx(52.7)
    assert not coordinator.data.position_stamped


async def test_the_jt808_clock_offset_is_kept_across_reconnects_and_restarts(
    hass: HomeAssistant, entry: MockConfigEntry, port: int, hass_storage: dict
) -> None:
    """A JT808 unit on UTC (not GMT+8): learned once, then right from a new connection's first
    report, also after Home Assistant restarts."""

    async def connect() -> SimulatedTracker:
        device = SimulatedTracker(IMEI, protocol="jt808", port=port, jt808_offset=timedelta(0))
        await device.connect()
        await device.login()
        return device

    coordinator = coordinator_of(entry)
    device = await connect()
    for step in range(3):
        await report(device, hass, latitude=10.0 + step)
    assert coordinator.data.jt808_utc_offset == timedelta(0)
    assert coordinator.data.latitude == pytest.approx(12.0)
    await device.close()

    device = await connect()  # a new session: it would start from GMT+8
    await report(device, hass, latitude=13.0)
    assert coordinator.data.latitude == pytest.approx(13.0)
    await device.close()

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=SAVE_DELAY + 1))
    await hass.async_block_till_done()
    saved = saved_state(hass_storage, entry.entry_id)
    assert saved is not None
    assert saved["jt808_utc_offset"] == 0
    coordinator = coordinator_of(entry)
    device = await connect()
    await report(device, hass, latitude=14.0)
    assert coordinator.data.latitude == pytest.approx(14.0)
    position_time = coordinator.data.position_time
    assert position_time is not None
    assert abs(position_time - dt_util.utcnow()) < timedelta(minutes=1)
    await device.close()


async def _one_second_later() -> None:
    """Device clocks count whole seconds: let the next report carry a later one."""
    import asyncio

    await asyncio.sleep(1.1)


# -- durable state --------------------------------------------------------------------------------


async def test_the_saved_position_is_never_more_than_a_minute_old(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker: MakeTracker, hass_storage: dict
) -> None:
    """A tracker reporting every 10 s: what is on disk (what a crash leaves) lags at most 60 s.

    Home Assistant's own delayed save starts over with every call and would never write.
    """
    tracker: SimulatedTracker = await make_tracker("jt808")  # type: ignore[assignment]
    start = dt_util.utcnow()
    latitudes: list[float] = []
    for step in range(15):  # two and a half minutes of reports
        latitude = 1.0 + step / 100
        await report(tracker, hass, latitude=latitude)
        latitudes.append(latitude)
        async_fire_time_changed(hass, start + timedelta(seconds=10 * (step + 1)))
        await hass.async_block_till_done()
        if step >= 6:
            saved = saved_state(hass_storage, entry.entry_id)
            assert saved is not None
            assert any(saved["latitude"] == pytest.approx(recent) for recent in latitudes[-7:])


async def test_alarm_hold_expiry_is_saved(
    hass: HomeAssistant, entry: MockConfigEntry, port: int, hass_storage: dict
) -> None:
    """Vibration clears after its hold time; the cleared state reaches the disk."""
    device = SimulatedTracker(IMEI, protocol="gps103", port=port)
    await device.connect()
    await device.login()
    await device.vibration()
    vibration = entity_id(hass, "binary_sensor", f"{IMEI}_vibration")
    await wait_for_state(hass, vibration, lambda s: s.state == STATE_ON)
    now = dt_util.utcnow()
    async_fire_time_changed(hass, now + timedelta(seconds=SAVE_DELAY + 1))
    await hass.async_block_till_done()
    assert (saved_state(hass_storage, entry.entry_id) or {})["alarms"]["vibration"]["on"] is True
    async_fire_time_changed(hass, now + timedelta(minutes=11))
    await hass.async_block_till_done()
    assert hass.states.get(vibration).state == STATE_OFF
    async_fire_time_changed(hass, now + timedelta(minutes=11, seconds=SAVE_DELAY + 1))
    await hass.async_block_till_done()
    assert (saved_state(hass_storage, entry.entry_id) or {})["alarms"]["vibration"]["on"] is False
    await device.close()


async def test_home_assistant_stopping_writes_what_is_pending(
    hass: HomeAssistant, entry: MockConfigEntry, make_tracker: MakeTracker, hass_storage: dict
) -> None:
    """A change not yet saved is written at Home Assistant's final write."""
    tracker: SimulatedTracker = await make_tracker("gt06")  # type: ignore[assignment]
    await report(tracker, hass, latitude=61.0, longitude=25.0)
    assert saved_state(hass_storage, entry.entry_id) is None
    hass.bus.async_fire(EVENT_HOMEASSISTANT_FINAL_WRITE)
    await hass.async_block_till_done()
    assert (saved_state(hass_storage, entry.entry_id) or {})["latitude"] == 61.0


async def test_a_pending_relay_command_never_recreates_a_removed_state_file(
    hass: HomeAssistant, port: int, hass_storage: dict
) -> None:
    """The entry is removed while its relay command waits; the answer comes after: no file."""
    import asyncio

    first, second = make_entry(IMEI, port), make_entry(IMEI_2, port, name="Car")
    for config_entry in (first, second):  # the second keeps the port, and the command, alive
        config_entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    device = SimulatedTracker(IMEI, protocol="gt06", port=port, answer_commands=False)
    await device.connect()
    await device.login()
    relay = entity_id(hass, "switch", f"{IMEI}_relay")
    await wait_for_state(hass, relay, lambda s: s.state != STATE_UNAVAILABLE)
    turning = asyncio.create_task(
        hass.services.async_call("switch", "turn_on", {"entity_id": relay}, blocking=True)
    )
    command = await device.wait_for(lambda d: d.kind == "command")
    # Not hass.async_block_till_done(): it would wait for the service call, which waits for
    # the answer.
    await hass.config_entries.async_remove(first.entry_id)
    assert saved_state(hass_storage, first.entry_id) is None
    parsed = frames.gt06_command(command.raw)
    assert parsed is not None
    await device.send(frames.gt06_command_reply(parsed[0], "Cut off the fuel supply: Success!", 9))
    async with asyncio.timeout(10):
        outcome = await asyncio.gather(turning, return_exceptions=True)
    assert outcome == [None]  # confirmed: the path that used to save ran
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=SAVE_DELAY * 3))
    await hass.async_block_till_done()
    assert saved_state(hass_storage, first.entry_id) is None
    await device.close()
