"""TimeBudget.chunks_of: chunks taken from a source until it is empty or the budget is spent."""

from __future__ import annotations

from streams.core.time_budget import CHUNK, TimeBudget


class Log:
    """A source of numbered items and a clock, each noting in ``events`` when it is used; the
    clock moves on ``step`` seconds with each chunk taken (its work)."""

    def __init__(self, items: int, step: float) -> None:
        self.left = list(range(items))
        self.step = step
        self.now = 0.0
        self.events: list[str] = []

    def clock(self) -> float:
        self.events.append(f"clock {self.now:g}")
        return self.now

    def take(self, limit: int) -> list[int]:
        chunk, self.left = self.left[:limit], self.left[limit:]
        self.events.append(f"take {len(chunk)}")
        if chunk:
            self.now += self.step
        return chunk


def test_the_clock_is_read_after_each_chunk_and_spent_means_reached() -> None:
    log = Log(items=100, step=1.0)
    budget = TimeBudget(2.0, clock=log.clock)
    chunks = list(budget.chunks_of(log.take))
    assert [list(c) for c in chunks] == [list(range(16)), list(range(16, 32))]
    # 2 s gone after the second chunk: exactly the budget counts as spent
    assert log.events == ["clock 0", "take 16", "clock 1", "take 16", "clock 2"]
    assert budget.spent
    assert log.left == list(range(32, 100))  # items not reached stay with the source


def test_without_check_first_one_chunk_is_taken_whatever_the_budget() -> None:
    log = Log(items=40, step=1.0)
    budget = TimeBudget(0.0, clock=log.clock)
    assert [len(c) for c in budget.chunks_of(log.take)] == [CHUNK]
    assert budget.spent and len(log.left) == 40 - CHUNK


def test_check_first_reads_the_clock_before_the_first_chunk() -> None:
    log = Log(items=40, step=1.0)
    budget = TimeBudget(0.0, clock=log.clock)
    assert list(budget.chunks_of(log.take, check_first=True)) == []
    assert log.events == ["clock 0", "clock 0"]  # started, then spent before any take
    assert budget.spent and len(log.left) == 40


def test_an_empty_source_ends_it_with_the_budget_not_spent() -> None:
    log = Log(items=20, step=1.0)
    budget = TimeBudget(10.0, clock=log.clock)
    assert [len(c) for c in budget.chunks_of(log.take, check_first=True)] == [16, 4]
    assert log.events == ["clock 0", "clock 0", "take 16", "clock 1", "take 4", "clock 2", "take 0"]
    assert not budget.spent and log.left == []


def test_one_budget_spans_two_sources() -> None:
    log = Log(items=16, step=1.0)
    budget = TimeBudget(2.5, clock=log.clock)
    assert [len(c) for c in budget.chunks_of(log.take)] == [16]
    assert not budget.spent
    log.left = list(range(100, 200))  # a second source, on the same budget (started at 0)
    assert [len(c) for c in budget.chunks_of(log.take, check_first=True)] == [16, 16]
    assert budget.spent and log.now == 3.0
