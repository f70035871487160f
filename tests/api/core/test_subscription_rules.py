"""The consumer-group rules are pure: properties over random outstanding deliveries."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from api.core.subscriptions import after_failure, plan_claim
from eventstore.subscriptions import INFLIGHT, PARKED, READY, GroupSettings, Pending

NOW = 1000.0

rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from([READY, INFLIGHT]),
        st.integers(0, 4),
        st.sampled_from([0.0, NOW - 1, NOW, NOW + 1]),
    ),
    max_size=30,
).map(lambda items: [Pending(i + 1, *item) for i, item in enumerate(items)])


@given(
    pending=rows,
    limit=st.integers(1, 10),
    max_in_flight=st.integers(1, 10),
    max_retries=st.integers(0, 3),
    ordering=st.sampled_from(["session", "none"]),
)
def test_plan_claim(
    pending: list[Pending], limit: int, max_in_flight: int, max_retries: int, ordering: str
) -> None:
    settings = GroupSettings(
        max_in_flight=max_in_flight,
        max_retries=max_retries,
        ordering=ordering,  # type: ignore[arg-type]
    )
    plan = plan_claim(settings, pending, NOW, limit)
    by_position = {p.position: p for p in pending}
    live = [p for p in pending if p.state == INFLIGHT and p.deadline > NOW]
    assert len(plan.claim) <= limit
    assert len(plan.claim) + len(live) <= max(max_in_flight, len(live))
    assert plan.claim == sorted(plan.claim)
    parked = {position for position, _ in plan.park}
    assert not parked & set(plan.claim)
    for position in parked:  # only deliveries that timed out with no retries left
        row = by_position[position]
        assert row.state == INFLIGHT and row.deadline <= NOW and row.attempt > max_retries
    for position in plan.claim:  # nothing live, nothing waiting out a delay
        assert by_position[position].deadline <= NOW
    if ordering == "session":
        held = {p.session_id for p in live}
        sessions = [by_position[p].session_id for p in plan.claim]
        assert len(sessions) == len(set(sessions))  # one per session at a time
        assert not set(sessions) & held
        for position in plan.claim:  # and always the session's oldest outstanding one
            row = by_position[position]
            earlier = [
                p
                for p in pending
                if p.session_id == row.session_id
                and p.position < position
                and p.position not in parked
            ]
            assert not earlier


@given(attempt=st.integers(1, 10), max_retries=st.integers(0, 5))
def test_after_failure(attempt: int, max_retries: int) -> None:
    outcome = after_failure(GroupSettings(max_retries=max_retries), attempt)
    assert outcome == (PARKED if attempt > max_retries else READY)
