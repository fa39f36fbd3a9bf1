"""The novelty detector over a run of an asset's records in one compiled call.

A :class:`models.detectors.novelty.NoveltyDetector`'s findings depend only on its sensors'
values and on whether the record is scored, so for the usual records (every sensor the
detector knows, in its row order, all started) a run's findings can all be computed before
the monitor's per-record loop (:func:`models.detectors.kernels.novelty_run`): the loop then
:meth:`NoveltyRun.take`\\ s each record's findings instead of calling
:meth:`~NoveltyDetector.score_learn_one`. Records after the first unusual one are left to
that method.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from models.detectors.novelty import KINDS, NoveltyDetector
from models.run_values import RunValues

Findings = dict[str, tuple[float, tuple[str, ...]]]


class NoveltyRun:
    """The detector's findings for the first :attr:`size` records of a run, already learned.

    The detector's state moves to after those records when the run is planned; until a
    record's findings are taken it does not count as learned: :meth:`rewind` puts the state
    back to after the records taken (a run that fails part way).
    """

    def __init__(
        self, detector: NoveltyDetector, values: NDArray[np.float64], first_scored: int
    ) -> None:
        self._detector = detector
        self._names = detector.run_sensors()
        self._before = detector.snapshot()
        self._values, self._first_scored = values, first_scored
        self._peak, self._top, self._hit = self._advance(len(values))
        self.size = len(values)
        self.taken = 0

    @classmethod
    def plan(
        cls, detector: NoveltyDetector, usual: RunValues | None, first_scored: int
    ) -> NoveltyRun | None:
        """The run's leading usual records (``usual``, when their keys are the detector's
        sensors) through the kernel (record ``i`` scored when ``i >= first_scored``), or None
        when the first record is not a usual one."""
        names = detector.run_sensors()
        if not names or usual is None or usual.keys != names:
            return None
        return cls(detector, usual.values, first_scored)

    def _advance(
        self, records: int
    ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
        return self._detector.learn_run(self._values[:records], self._first_scored)

    def take(self, i: int) -> Findings:
        """Record ``i``'s findings (the records are taken in order)."""
        self.taken = i + 1
        if not self._hit[i]:
            return {}
        peak, top, names = self._peak[i], self._top[i], self._names
        return {
            kind: (float(peak[k]), tuple(names[s] for s in top[k] if s >= 0))
            for k, kind in enumerate(KINDS)
            if peak[k] > 1.0
        }

    def rewind(self) -> None:
        """Put the detector's state back to after the records taken."""
        if self.taken < self.size:
            self._detector.restore(self._before)
            self._advance(self.taken)
