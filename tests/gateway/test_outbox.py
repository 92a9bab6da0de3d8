"""The outbox under any interleaving of puts, sends, confirmations and broken connections."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from gateway.outbox import Outbox, Publication

OPERATIONS = st.lists(
    st.sampled_from(["report", "control", "send", "confirm", "confirm_last", "lose", "connect"]),
    max_size=120,
)


@settings(max_examples=300)  # a few hundred interleavings cover the branches; CI time matters
@given(OPERATIONS, st.integers(min_value=1, max_value=8))
def test_no_accepted_report_is_lost_and_order_holds(operations: list[str], capacity: int) -> None:
    """Every report accepted is confirmed in the end; each connection sends in put order."""
    outbox = Outbox(capacity)
    outbox.connected = True
    accepted: list[Publication] = []
    inflight: list[Publication] = []
    sent_this_connection: list[int] = []
    order = {}

    def put(report: bool) -> None:
        publication = Publication(f"t/{len(order)}", b"", report=report)
        order[id(publication)] = len(order)
        if report:
            if not outbox.room_for(1):
                outbox.refuse()
                return
            accepted.append(publication)
        outbox.put(publication)

    def send() -> None:
        publication = outbox.next_unsent()
        if publication is not None:
            inflight.append(publication)
            sent_this_connection.append(order[id(publication)])

    for operation in operations:
        if operation in ("report", "control"):
            put(operation == "report")
        elif operation == "send" and outbox.connected:
            send()
        elif operation == "confirm" and inflight:
            outbox.confirmed(inflight.pop(0))
        elif operation == "confirm_last" and inflight:
            outbox.confirmed(inflight.pop())  # PUBACKs out of order
        elif operation == "lose" and outbox.connected:
            outbox.connection_lost()
            inflight.clear()
            assert sent_this_connection == sorted(sent_this_connection)
            sent_this_connection.clear()
        elif operation == "connect" and not outbox.connected:
            outbox.connected = True
        assert outbox.reports <= capacity
    assert sent_this_connection == sorted(sent_this_connection)

    # The broker comes back and everything drains.
    if not outbox.connected:
        outbox.connected = True
    for publication in inflight:
        outbox.confirmed(publication)
    while (publication := outbox.next_unsent()) is not None:
        outbox.confirmed(publication)
    assert all(publication.done for publication in accepted)
    assert outbox.stats.reports_published == len(accepted)  # each one confirmed once
    assert len(outbox) == 0
    assert outbox.reports == 0


def test_control_messages_wait_only_while_connected() -> None:
    """Discovery and availability are rebuilt on connect, so none is kept while away."""
    outbox = Outbox(10)
    outbox.put(Publication("config", b"{}", retain=True))
    assert len(outbox) == 0
    outbox.put(Publication("state", b"{}", report=True))
    outbox.connected = True
    outbox.put_first([Publication("status", b"online")])
    first = outbox.next_unsent()
    second = outbox.next_unsent()
    assert first is not None
    assert first.topic == "status"
    assert second is not None
    assert second.topic == "state"
    outbox.connection_lost()
    assert outbox.stats.resent == 1
    assert [outbox.next_unsent()] != [None]
