"""Compiled kernels of the correlation detector (:mod:`models.detectors.correlation`): the
covariance's learning step and the whole per-record step, under the rules of
:mod:`models.detectors.kernels` (results identical to numpy's). Its matrix products call the BLAS
functions numpy's ``@`` calls, in numpy's own OpenBLAS with numpy's arguments; where numpy ships
another BLAS the step is None and the detector keeps its numpy step.
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path
from typing import Any, cast

import numba
import numpy as np
from llvmlite import binding as llvm
from numpy.typing import NDArray

from models.detectors.kernels import TOP, compiled, pairwise_sum, rank


@compiled("void(float64[::1], float64[:, ::1], float64[::1], float64)")
def covariance_learn(
    mean: NDArray[np.float64], cov: NDArray[np.float64], v: NDArray[np.float64], a: float
) -> None:
    """Take ``v`` into an exponentially weighted ``mean`` and ``cov`` (newest weight ``a``), in
    place, as ``CorrelationDetector`` does: ``cov = (1 - a) * (cov + a * outer(d, d))`` with
    ``d = v - mean`` (the same products in the same order)."""
    d = v - mean
    for i in range(len(d)):
        mean[i] += a * d[i]
    keep = 1.0 - a
    for i in range(len(d)):
        for j in range(len(d)):
            cov[i, j] = (d[i] * d[j] * a + cov[i, j]) * keep


def _numpy_blas() -> dict[str, int]:
    """Addresses of the CBLAS ``ddot`` and ``dgemv`` of the OpenBLAS numpy's wheel ships (and
    numpy's ``@`` runs), by name; empty where numpy has another BLAS (built from source, a
    distribution's numpy)."""
    names = ("scipy_cblas_ddot64_", "scipy_cblas_dgemv64_")
    libs = Path(np.__file__).parent.parent / "numpy.libs"
    for path in sorted(libs.glob("libscipy_openblas64_*.so")):
        try:
            lib = ctypes.CDLL(str(path))  # loaded by numpy already: the same library
            return {
                name: cast(int, ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
                for name in names
            }
        except (OSError, AttributeError):
            continue
    return {}


_BLAS = _numpy_blas()
for _name, _address in _BLAS.items():
    llvm.add_symbol(_name, _address)
# CBLAS enums (as numpy's matmul passes them)
_ROW_MAJOR, _COL_MAJOR, _TRANS = 101, 102, 112
_DOUBLES = numba.types.CPointer(numba.types.float64)  # type: ignore[no-untyped-call]
_ddot: Any = numba.types.ExternalFunction(
    "scipy_cblas_ddot64_",
    numba.types.float64(
        numba.types.int64, _DOUBLES, numba.types.int64, _DOUBLES, numba.types.int64
    ),
)
_dgemv: Any = numba.types.ExternalFunction(
    "scipy_cblas_dgemv64_",
    numba.types.void(
        numba.types.int32,
        numba.types.int32,
        numba.types.int64,
        numba.types.int64,
        numba.types.float64,
        _DOUBLES,
        numba.types.int64,
        _DOUBLES,
        numba.types.int64,
        numba.types.float64,
        _DOUBLES,
        numba.types.int64,
    ),
)


@compiled()
def _basis_t_dot(
    basis: NDArray[np.float64], c: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    """``out = basis.T @ c`` as numpy's matmul computes it (``basis``: sensors x components)."""
    n, k = basis.shape
    if k == 1:  # a row times a column: numpy's dot
        out[0] = 0.0 + _ddot(n, basis.ctypes, 1, c.ctypes, 1)
    elif k > 1:
        _dgemv(_ROW_MAJOR, _TRANS, n, k, 1.0, basis.ctypes, k, c.ctypes, 1, 0.0, out.ctypes, 1)


@compiled()
def _basis_dot(
    basis: NDArray[np.float64], x: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    """``out = basis @ x`` as numpy's matmul computes it."""
    n, k = basis.shape
    if k > 1:
        _dgemv(_COL_MAJOR, _TRANS, k, n, 1.0, basis.ctypes, k, x.ctypes, 1, 0.0, out.ctypes, 1)
        return
    for i in range(n):  # one component or none: numpy's plain loop
        out[i] = 0.0
        for j in range(k):
            out[i] += basis[i, j] * x[j]


@compiled()
def _top_by_size(by: NDArray[np.float64]) -> tuple[int, int, int]:
    """The positions of the ``TOP`` largest ``|by|`` (-1 filling), in the order a stable sort of
    ``-|by|`` gives (NaN last)."""
    size = np.empty(by.shape[0])
    for i in range(by.shape[0]):
        s = abs(by[i])
        size[i] = -1.0 if math.isnan(s) else s
    peak, top = np.zeros(1), np.full((1, TOP), -1, dtype=np.int64)
    rank(size, peak, top, 0, -2.0)
    return top[0, 0], top[0, 1], top[0, 2]


def _correlation_step(
    values: NDArray[np.float64],
    order: NDArray[np.int64],
    mean: NDArray[np.float64],
    cov: NDArray[np.float64],
    basis: NDArray[np.float64],
    inverse_variance: NDArray[np.float64],
    n: int,
    spe_max: float,
    t2_max: float,
    margin: float,
    decay: float,
    alpha: float,
    judge: bool,
    learn: bool,
) -> tuple[float, int, int, int, float, float]:
    """One record of :class:`CorrelationDetector` (``values`` in the record's order,
    ``values[order]`` in the state's): its SPE and T² off the components ``basis`` (sensors x
    components; no rows: none yet), judged against their maxima when ``judge``, then when
    ``learn`` taken into the maxima and into ``mean`` and ``cov`` (in place; ``n`` records
    learned before; ``alpha``: the newest record's least weight there).

    Returns the excess (0 when not above 1), the positions of the sensors named (-1 filling),
    and the SPE and T² maxima (unchanged unless ``learn``).
    """
    sensors = values.shape[0]
    v = np.empty(sensors)
    for i in range(sensors):
        v[i] = values[order[i]]
    excess, top = 0.0, (-1, -1, -1)
    if basis.shape[0]:
        k = basis.shape[1]
        c, p, back = v - mean, np.zeros(k), np.zeros(sensors)
        _basis_t_dot(basis, c, p)
        _basis_dot(basis, p, back)
        res = c - back
        _basis_dot(basis, p * inverse_variance, back)
        t2_parts = c * back
        spe = 0.0 + _ddot(sensors, res.ctypes, 1, res.ctypes, 1)
        t2 = 0.0 + pairwise_sum(t2_parts)
        if judge:
            best, by = 1.0, res
            if spe_max > 0.0 and (spe - spe_max) / (margin * spe_max) > best:
                best = (spe - spe_max) / (margin * spe_max)
            if t2_max > 0.0 and (t2 - t2_max) / (margin * t2_max) > best:
                best, by = (t2 - t2_max) / (margin * t2_max), t2_parts
            if best > 1.0:
                excess, top = best, _top_by_size(by)
        if learn:  # Python's max: the first unless the second is larger
            spe_max = spe_max * decay if spe_max * decay > spe else spe
            t2_max = t2_max * decay if t2_max * decay > t2 else t2
    if learn:
        a = 1.0 / (n + 1)
        covariance_learn(mean, cov, v, alpha if alpha > a else a)
    return excess, top[0], top[1], top[2], spe_max, t2_max


_CORRELATION_STEP_SIGNATURE = (
    "Tuple((float64, int64, int64, int64, float64, float64))"
    "(float64[::1], int64[::1], float64[::1], float64[:, ::1], float64[:, ::1], float64[::1],"
    " int64, float64, float64, float64, float64, float64, boolean, boolean)"
)
# where numpy's BLAS is not found the compiled step cannot reproduce its products: None (the
# detector keeps its numpy step)
correlation_step = compiled(_CORRELATION_STEP_SIGNATURE)(_correlation_step) if _BLAS else None
