"""Run-to-failure data for the RUL forecaster: NASA C-MAPSS text files and the fleet simulator.

Both sources become a list of :class:`Run` (one engine or one simulated asset life: its settings,
all 21 sensors and the true RUL of every row). The standard preprocessing then selects the
informative sensors, scales them per regime (plus optional trend channels), caps the RUL target
at 125 and cuts windows of 30.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from models.datafiles import read_text
from models.errors import DataError
from models.features import InputSpec, Normalizer, last_window, sliding_windows
from models.simulator import SENSORS, SETTINGS, FleetSimulator, SimRecord

RUL_CAP = 125.0
N_COLUMNS = 2 + len(SETTINGS) + len(SENSORS)  # unit, cycle, settings, s1..s21
SUBSETS = ("FD001", "FD002", "FD003", "FD004")


@dataclass(frozen=True)
class Run:
    """One run of one asset: ``settings (T, S)``, ``sensors (T, len(sensor_names))``, ``rul (T,)``.

    ``sensor_names`` name the sensor columns (C-MAPSS and the simulator: s1..s21).

    Examples
    --------
    >>> run = Run("1", np.zeros((3, 3)), np.zeros((3, 21)), np.array([2.0, 1.0, 0.0]))
    >>> len(run), run.select(("s2", "s4")).shape
    (3, (3, 2))
    """

    run_id: str
    settings: NDArray[np.float64]
    sensors: NDArray[np.float64]
    rul: NDArray[np.float64]
    sensor_names: tuple[str, ...] = SENSORS

    def __len__(self) -> int:
        return len(self.rul)

    def select(self, names: Sequence[str]) -> NDArray[np.float64]:
        """Columns of the named sensors, ``(T, len(names))``."""
        try:
            idx = [self.sensor_names.index(n) for n in names]
        except ValueError:
            raise DataError(f"run {self.run_id} lacks a sensor among {list(names)}") from None
        return self.sensors[:, idx]


def _parse(path: Path) -> NDArray[np.float64]:
    try:
        lines = read_text(path, "ascii").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    rows: list[list[float]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != N_COLUMNS:
            raise DataError(f"{path}:{number}: expected {N_COLUMNS} columns, got {len(fields)}")
        try:
            row = [float(f) for f in fields]
        except ValueError:
            raise DataError(f"{path}:{number}: non-numeric value") from None
        if not all(np.isfinite(row)):
            raise DataError(f"{path}:{number}: non-finite value")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no data rows")
    return np.array(rows)


def read_cmapss(path: str | Path, final_rul: Sequence[float] | None = None) -> list[Run]:
    """Read a C-MAPSS ``train_*``/``test_*`` file into runs, one per engine.

    Without ``final_rul`` the engines run to failure (RUL 0 at the last cycle); with it (test
    files) engine ``i`` has ``final_rul[i]`` cycles left after its last row. Raises ``DataError``
    naming the file and line on a malformed file.

    Examples
    --------
    >>> import tempfile, os
    >>> row = "1 {} 0 0 100 " + " ".join(["1.0"] * 21) + "\\n"
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "train.txt")
    ...     _ = open(p, "w").write(row.format(1) + row.format(2))
    ...     runs = read_cmapss(p)
    >>> runs[0].run_id, runs[0].rul.tolist()
    ('1', [1.0, 0.0])
    """
    path = Path(path)
    data = _parse(path)
    units = data[:, 0]
    if np.any(units != np.round(units)) or np.any(data[:, 1] != np.round(data[:, 1])):
        raise DataError(f"{path}: unit and cycle must be integers")
    order = list(dict.fromkeys(units.astype(int).tolist()))
    if final_rul is not None and len(final_rul) != len(order):
        raise DataError(f"{path}: {len(order)} engines but {len(final_rul)} RUL values")
    runs = []
    for i, unit in enumerate(order):
        rows = data[units == unit]
        if np.any(np.diff(rows[:, 1]) <= 0):
            raise DataError(f"{path}: engine {unit}: cycles not increasing")
        offset = 0.0 if final_rul is None else float(final_rul[i])
        rul = offset + np.arange(len(rows) - 1, -1, -1, dtype=float)
        runs.append(Run(str(unit), rows[:, 2:5].copy(), rows[:, 5:].copy(), rul))
    return runs


def read_rul(path: str | Path) -> NDArray[np.float64]:
    """Read a ``RUL_*`` file: one non-negative number per line.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "RUL.txt")
    ...     _ = open(p, "w").write("112\\n98\\n")
    ...     read_rul(p).tolist()
    [112.0, 98.0]
    """
    path = Path(path)
    try:
        lines = [ln for ln in read_text(path, "ascii").splitlines() if ln.strip()]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    values = []
    for number, line in enumerate(lines, 1):
        try:
            (value,) = (float(f) for f in line.split())
        except ValueError:
            raise DataError(f"{path}:{number}: expected one number") from None
        if not np.isfinite(value) or value < 0:
            raise DataError(f"{path}:{number}: RUL must be a non-negative number")
        values.append(value)
    if not values:
        raise DataError(f"{path}: no RUL values")
    return np.array(values)


def cmapss_paths(data_dir: str | Path, subset: str) -> tuple[Path, Path, Path]:
    """``(train, test, RUL)`` file paths of one subset in a CMAPSSData directory.

    >>> [p.name for p in cmapss_paths("/data", "FD002")]
    ['train_FD002.txt', 'test_FD002.txt', 'RUL_FD002.txt']
    """
    if subset not in SUBSETS:
        raise DataError(f"unknown C-MAPSS subset {subset!r}; expected one of {', '.join(SUBSETS)}")
    d = Path(data_dir)
    return d / f"train_{subset}.txt", d / f"test_{subset}.txt", d / f"RUL_{subset}.txt"


def read_cmapss_test(test: str | Path, rul: str | Path) -> list[Run]:
    """Test engines with their true RUL (``test_*`` and ``RUL_*`` files).

    >>> read_cmapss_test("/nonexistent/test.txt", "/nonexistent/RUL.txt")
    Traceback (most recent call last):
    ...
    models.errors.DataError: /nonexistent/RUL.txt: file not found
    """
    return read_cmapss(test, read_rul(rul).tolist())


def simulated_runs(assets: int = 20, lives: int = 3, seed: int = 0, regimes: int = 3) -> list[Run]:
    """Complete run-to-failure lives from :class:`~models.simulator.FleetSimulator`.

    >>> runs = simulated_runs(assets=2, lives=1, seed=1)
    >>> len(runs), float(runs[0].rul[-1]), runs[0].sensors.shape[1]
    (2, 0.0, 21)
    """
    sim = FleetSimulator(assets=assets, seed=seed, regimes=regimes)
    return runs_from_records(sim.runs(lives))


def runs_from_records(records: Iterable[SimRecord]) -> list[Run]:
    """Group simulator records by ``(asset_id, life)`` into runs, in first-seen order."""
    groups: dict[tuple[str, int], list[SimRecord]] = {}
    for r in records:
        groups.setdefault((r.asset_id, r.life), []).append(r)
    runs = []
    for (asset, life), recs in groups.items():
        settings = np.array([[r.settings[k] for k in SETTINGS] for r in recs])
        sensors = np.array([[r.sensors[k] for k in SENSORS] for r in recs])
        runs.append(
            Run(f"{asset}/{life}", settings, sensors, np.array([float(r.rul) for r in recs]))
        )
    return runs


def data_sha256(runs: Sequence[Run]) -> str:
    """Content hash of runs (ids, settings, sensors and targets), for artifact provenance.

    >>> data_sha256(simulated_runs(1, 1)) == data_sha256(simulated_runs(1, 1))
    True
    """
    h = hashlib.sha256()
    for run in runs:
        h.update(run.run_id.encode())
        for a in (run.settings, run.sensors, run.rul):
            h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
    return h.hexdigest()


def split_folds(
    runs: Sequence[Run], folds: int, val_share: float, seed: int
) -> list[tuple[list[Run], list[Run]]]:
    """Split whole runs (engines) into ``(training, validation)`` pairs, reproducibly.

    With ``folds >= 2`` the runs are shuffled and dealt into that many folds, each the
    validation set of one pair (every run is validated exactly once). With ``folds == 1`` one
    pair holds out a ``val_share`` of the runs (none when ``val_share`` is 0).

    >>> pairs = split_folds(simulated_runs(5, 1), 5, 0.0, seed=0)
    >>> [(len(a), len(b)) for a, b in pairs]
    [(4, 1), (4, 1), (4, 1), (4, 1), (4, 1)]
    >>> [(len(a), len(b)) for a, b in split_folds(simulated_runs(4, 1), 1, 0.25, seed=0)]
    [(3, 1)]
    """
    if folds < 1:
        raise DataError(f"need at least one fold, got {folds}")
    if not 0.0 <= val_share < 1.0:
        raise DataError(f"validation share must be in [0, 1), got {val_share}")
    order = np.random.default_rng(seed).permutation(len(runs))
    if folds == 1:
        n_val = round(val_share * len(runs))
        held = [set(order[:n_val].tolist())]
    else:
        held = [set(order[k::folds].tolist()) for k in range(folds)]
    if any(len(h) >= len(runs) for h in held) or (folds > 1 and folds > len(runs)):
        raise DataError(f"cannot split {len(runs)} runs into {folds} folds (share {val_share})")
    return [
        ([r for i, r in enumerate(runs) if i not in h], [r for i, r in enumerate(runs) if i in h])
        for h in held
    ]


def fit_normalizer(
    runs: Sequence[Run], sensors: Sequence[str], settings: Sequence[str] = ()
) -> Normalizer:
    """Fit the per-regime scaling on all rows of ``runs`` (``settings``: their columns' names)."""
    if not runs:
        raise DataError("no runs to fit the scaling on")
    x = np.concatenate([r.select(sensors) for r in runs])
    s = np.concatenate([r.settings for r in runs])
    return Normalizer.fit(x, s, names=sensors, setting_names=settings)


def inputs(run: Run, spec: InputSpec) -> NDArray[np.float32]:
    """One run's model input rows ``(T, len(spec.names))``.

    >>> runs = simulated_runs(1, 1, seed=1)
    >>> norm = fit_normalizer(runs, ("s2", "s3"))
    >>> inputs(runs[0], InputSpec(norm, trend=0.02, age_scale=200.0)).shape[1]
    5
    """
    return spec.rows(run.select(spec.normalizer.sensors), run.settings)


def windows(
    runs: Sequence[Run], spec: InputSpec, cap: float = RUL_CAP
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Every window of every run with its capped target -> ``X (N, window, F)``, ``y (N,)``.

    >>> runs = simulated_runs(2, 1, seed=1)
    >>> x, y = windows(runs, InputSpec(fit_normalizer(runs, ("s2", "s3"))))
    >>> x.shape[1:], float(y.max()) <= RUL_CAP
    ((30, 2), True)
    """
    xs, ys = [], []
    for run in runs:
        w = sliding_windows(inputs(run, spec), spec.window)
        xs.append(w)
        ys.append(np.minimum(run.rul[-len(w) :], cap))
    if not xs:
        raise DataError("no runs to cut windows from")
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys).astype(np.float32)


def cut_windows(
    runs: Sequence[Run], spec: InputSpec, cuts: int = 10, horizon: float = 150.0, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """The test protocol on run-to-failure runs: each run cut at ``cuts`` random rows.

    Cuts are drawn (seeded, with replacement) among the rows with a true RUL of at most
    ``horizon``; each gives the window ending at the cut and the true, uncapped RUL there
    -> ``X (len(runs) * cuts, window, F)``, ``y``.

    >>> runs = simulated_runs(2, 1, seed=1)
    >>> norm = fit_normalizer(runs, ("s2", "s3"))
    >>> x, y = cut_windows(runs, InputSpec(norm), cuts=4, horizon=200)
    >>> x.shape, bool(y.max() <= 200)
    ((8, 30, 2), True)
    """
    if cuts < 1 or not runs:
        raise DataError("need at least one run and one cut per run")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for run in runs:
        w = sliding_windows(inputs(run, spec), spec.window)
        rul = run.rul[-len(w) :]
        eligible = np.flatnonzero(rul <= horizon)
        pick = rng.choice(eligible if len(eligible) else np.arange(len(w)), size=cuts)
        xs.append(w[pick])
        ys.append(rul[pick])
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def final_windows(
    runs: Sequence[Run], spec: InputSpec
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Each run's last window and its true (uncapped) RUL -> ``X (E, window, F)``, ``y (E,)``.

    A run shorter than the window is front-padded with its first row.
    """
    if not runs:
        raise DataError("no runs to evaluate")
    x = np.stack([last_window(inputs(r, spec), spec.window) for r in runs])
    return x, np.array([float(r.rul[-1]) for r in runs])
