"""Offset continuity: what the agent admits, and which skips it rewinds."""

from __future__ import annotations

from streams.core.offsets import OffsetTracker, Skip
from streams.core.processor import Inbound


def messages(*pairs: tuple[int, int]) -> list[Inbound]:
    return [Inbound("telemetry", p, o, b"") for p, o in pairs]


def offsets(batch: list[Inbound]) -> list[tuple[int, int]]:
    return [(m.partition, m.offset) for m in batch]


def test_a_partition_seen_first_is_taken_from_wherever_it_starts() -> None:
    t = OffsetTracker()
    kept, skips = t.admit(messages((0, 100), (1, 7), (0, 101)))
    assert offsets(kept) == [(0, 100), (1, 7), (0, 101)]
    assert not skips
    assert t.expected == {0: 102, 1: 8}


def test_a_replay_after_a_seek_back_is_admitted_and_does_not_move_the_cursor_back() -> None:
    t = OffsetTracker({0: 50})
    kept, skips = t.admit(messages((0, 40), (0, 41), (0, 50), (0, 51)))
    assert len(kept) == 4 and not skips
    assert t.expected == {0: 52}


def test_a_jump_holds_back_the_rest_of_that_partition_only() -> None:
    t = OffsetTracker({0: 10, 1: 5})
    kept, skips = t.admit(messages((0, 10), (1, 5), (0, 30), (1, 6), (0, 11), (0, 31)))
    assert offsets(kept) == [(0, 10), (1, 5), (1, 6)]
    assert skips == [Skip(0, 11, 30)]
    assert t.expected == {0: 11, 1: 7}
    # after the rewind the missing offsets arrive, then the rest
    kept, skips = t.admit(messages(*[(0, o) for o in range(11, 32)]))
    assert len(kept) == 21 and not skips
    assert t.expected[0] == 32


def test_the_same_jump_after_a_rewind_is_a_real_hole_in_the_log() -> None:
    t = OffsetTracker({0: 10})
    assert t.admit(messages((0, 12)))[1] == [Skip(0, 10, 12)]
    kept, skips = t.admit(messages((0, 12), (0, 13)))  # offsets 10 and 11 do not exist
    assert offsets(kept) == [(0, 12), (0, 13)] and not skips
    # a new, different jump is rewound again
    assert t.admit(messages((0, 20)))[1] == [Skip(0, 14, 20)]


def test_a_partition_lost_and_assigned_again_starts_from_its_committed_offset() -> None:
    t = OffsetTracker({0: 10, 1: 10})
    t.keep([1])
    kept, skips = t.admit(messages((0, 500), (1, 10)))  # another worker took partition 0 on
    assert len(kept) == 2 and not skips
