"""A small timing harness: warm-up, interleaved runs, medians, a table.

Every benchmark *case* compares a few implementations of the same thing
(difsci as a user writes it, a hand-written numba reference, peers).  They
are timed in one process and *interleaved* — round r runs each of them once,
in an order rotated every round — so that a burst of load from another
process on this small machine hits all of them alike.  The figure reported
is the median of the rounds.

Before any timing, every implementation is run once (the warm-up also
compiles), its result is snapshotted and ``case.verify`` compares it to the
reference's: a wrong number raises :class:`ResultMismatch`, it is never
timed and reported as if it were fine.

    case = Case("saxpy 10M f32", "forward", ref="numba",
                impls={"numba": ref_fn, "difsci": ds_fn}, target=1.2,
                verify=lambda res: assert_close("loss", res["difsci"], res["numba"]))
    result = run_case(case, repeats=15)
    print_table([result])
"""
from __future__ import annotations

import gc
import math
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class ResultMismatch(AssertionError):
    """An implementation computed different numbers from the reference."""


# ----------------------------------------------------------------- checking
def snapshot(value: Any) -> Any:
    """A deep copy of arrays (and tuples/lists/dicts of them) returned by an implementation."""
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(snapshot(v) for v in value)
    if hasattr(value, "numpy") and callable(value.numpy):      # ds.Array, jax/torch arrays
        try:
            return np.array(value.numpy(), copy=True)
        except Exception:  # noqa: BLE001, S110
            pass
    if isinstance(value, np.ndarray) or np.isscalar(value) or hasattr(value, "__array__"):
        return np.array(value, copy=True)
    return value


def assert_close(what: str, got, want, rtol: float = 1e-9, atol: float = 0.0) -> float:
    """Raise :class:`ResultMismatch` unless ``got`` matches ``want``; return the max relative error.

    ``atol`` is absolute; the relative error is taken against ``max(|want|)``
    so that entries near zero in a large field do not dominate.
    """
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        raise ResultMismatch(f"{what}: shape {g.shape} != reference shape {w.shape}")
    if not np.all(np.isfinite(g)):
        raise ResultMismatch(f"{what}: non-finite values ({np.count_nonzero(~np.isfinite(g))} of {g.size})")
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    err = float(np.max(np.abs(g - w))) if w.size else 0.0
    if err > atol + rtol * scale:
        k = int(np.argmax(np.abs(g - w)))
        raise ResultMismatch(
            f"{what}: max |difference| {err:.3e} > {atol:.1e} + {rtol:.1e} * max|ref| ({scale:.3e}); "
            f"worst at flat index {k}: got {g.ravel()[k]!r}, reference {w.ravel()[k]!r}")
    return err / scale if scale > 0 else err


# ------------------------------------------------------------------ timing
@dataclass
class Case:
    """One comparison: the same computation done by several implementations.

    ``impls`` maps a label to a zero-argument callable that does the whole
    timed operation (including resets a user would have to do, such as
    zeroing an accumulator) and returns its result for verification.
    ``ref`` names the reference implementation (ratios are taken against
    it); ``target`` is the ratio difsci should stay within (None: no target);
    ``verify(results)`` gets ``{label: snapshot of the warm-up result}`` and
    raises on a mismatch.  ``number`` calls are timed per sample (for very
    short operations); the reported time is per call.
    """

    workload: str
    variant: str
    impls: dict[str, Callable[[], Any]]
    ref: str
    target: float | None = None
    verify: Callable[[dict[str, Any]], None] | None = None
    number: int = 1
    target_impls: tuple[str, ...] = ("difsci",)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    """Medians (seconds per call) of a case's implementations, or the error that stopped it."""

    case: Case
    median: dict[str, float] = field(default_factory=dict)
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)   # (min, max)
    errors: dict[str, str] = field(default_factory=dict)
    rounds: int = 0

    def ratio(self, label: str) -> float | None:
        """Median time / the reference's median time."""
        ref = self.median.get(self.case.ref)
        t = self.median.get(label)
        if ref is None or t is None or ref <= 0:
            return None
        return t / ref

    def min_ratio(self, label: str) -> float | None:
        """Fastest round / the reference's fastest round: the least disturbed estimate on a busy machine."""
        if label not in self.spread or self.case.ref not in self.spread:
            return None
        return self.spread[label][0] / self.spread[self.case.ref][0]


def _call(fn: Callable[[], Any], number: int, clock: Callable[[], float]) -> float:
    t0 = clock()
    for _ in range(number):
        fn()
    return (clock() - t0) / number


def run_case(case: Case, repeats: int = 7, warmup: int = 1, max_seconds: float | None = None,
             clock: Callable[[], float] = time.perf_counter) -> Result:
    """Warm up, verify, then time ``repeats`` interleaved rounds; return the medians.

    An implementation that raises during warm-up is reported in
    ``Result.errors`` and left out of the timing; a verification failure
    raises :class:`ResultMismatch` after recording it.  ``max_seconds``
    stops adding rounds (after at least three) once the case has run that long.
    ``clock`` is ``time.perf_counter`` (wall time); ``time.process_time``
    gives CPU time, which other processes do not disturb when numba runs one
    thread (with several, idle OpenMP threads spinning would count too).
    """
    res = Result(case)
    live: dict[str, Callable[[], Any]] = {}
    outputs: dict[str, Any] = {}
    for label, fn in case.impls.items():
        try:
            out = fn()
            outputs[label] = snapshot(out)
            for _ in range(warmup - 1):
                fn()
            live[label] = fn
        except ResultMismatch:
            raise
        except Exception as e:  # noqa: BLE001 -- a compile failure in one implementation must not hide the others
            res.errors[label] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            res.errors[label + ":traceback"] = traceback.format_exc()
    if case.verify is not None and case.ref in outputs:
        try:
            case.verify(outputs)
        except ResultMismatch as e:
            res.errors["verify"] = str(e)
            raise
    samples: dict[str, list[float]] = {k: [] for k in live}
    labels = list(live)
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    start = time.perf_counter()
    try:
        for r in range(repeats):
            k = r % len(labels) if labels else 0
            for label in labels[k:] + labels[:k]:           # rotate the order every round
                samples[label].append(_call(live[label], case.number, clock))
            res.rounds = r + 1
            if max_seconds is not None and r >= 2 and time.perf_counter() - start > max_seconds:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    for label, xs in samples.items():
        if xs:
            res.median[label] = statistics.median(xs)
            res.spread[label] = (min(xs), max(xs))
    return res


# ------------------------------------------------------------------- table
def fmt_time(s: float | None) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def verdict(ratio: float | None, target: float | None) -> str:
    if ratio is None or target is None:
        return ""
    if ratio <= target:
        return f"ok (<= {target:g}x)"
    return f"MISS ({ratio / target:.2f}x over {target:g}x)"


def table_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for res in results:
        c = res.case
        for label in c.impls:
            if label in res.median:
                t = res.median[label]
                lo, hi = res.spread[label]
                ratio = res.ratio(label)
                mr = res.min_ratio(label)
                target = c.target if label in c.target_impls else None
                rows.append([c.workload, c.variant, label, fmt_time(t), f"{fmt_time(lo)}..{fmt_time(hi)}",
                             "ref" if label == c.ref else (f"{ratio:.2f}x" if ratio is not None else "-"),
                             "" if label == c.ref or mr is None else f"{mr:.2f}x",
                             verdict(ratio, target), c.notes.get(label, "")])
            elif label in res.errors:
                rows.append([c.workload, c.variant, label, "FAILED", "", "", "", "", res.errors[label][:120]])
        if "verify" in res.errors:
            rows.append([c.workload, c.variant, "verify", "WRONG RESULT", "", "", "", "", res.errors["verify"][:160]])
    return rows


HEADER = ["workload", "variant", "impl", "median", "min..max", "vs ref", "min vs min", "target (on median)", "note"]


def format_table(rows: list[list[str]], header: list[str] = HEADER, markdown: bool = False) -> str:
    """Rows of strings as an aligned text table (or a Markdown table)."""
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def print_table(results: list[Result], markdown: bool = False) -> None:
    print(format_table(table_rows(results), markdown=markdown))


def verify_case(case: Case) -> dict[str, Any]:
    """Run every implementation once and verify (no timing); raise on any failure.

    Used by the smoke tests: an implementation that raises propagates its
    exception, a mismatch raises :class:`ResultMismatch`.
    """
    outputs = {label: snapshot(fn()) for label, fn in case.impls.items()}
    if case.verify is not None:
        case.verify(outputs)
    return outputs
