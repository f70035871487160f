"""Random bytes fetched in bulk: each byte handed out once, in this process and a fork."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import entropy
from eventstore.base import new_event_id


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 64), min_size=1, max_size=300))
def test_bytes_are_handed_out_once_across_chunk_refills(sizes: list[int]) -> None:
    taken = [entropy.random_bytes(n) for n in sizes]
    assert [len(b) for b in taken] == sizes
    # 16-byte windows of the OS's random bytes never repeat by chance: any repeat of
    # a whole draw would mean a byte range was handed out twice.
    long_draws = [b for b in taken if len(b) >= 16]
    assert len(set(long_draws)) == len(long_draws)


def test_event_ids_stay_unique_over_many_refills() -> None:
    ids = {new_event_id() for _ in range(5 * entropy.CHUNK_BYTES)}  # ~12 refills
    assert len(ids) == 5 * entropy.CHUNK_BYTES


def test_a_forked_child_does_not_repeat_the_parents_bytes() -> None:
    entropy.random_bytes(1)  # the parent holds a partly used buffer
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next draw and leave at once
        os.close(read_end)
        os.write(write_end, entropy.random_bytes(32))
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert len(child) == 32
    assert child != entropy.random_bytes(32)  # the parent's next bytes differ
