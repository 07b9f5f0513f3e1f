"""The statistics a claim computes over its runs' journals, each with a 95% interval.

Every statistic first reads its rows into per-case units (a sum and a count for each
case, keyed by the case's content), so that a difference of two statistics can pair
them where their runs share cases. Rows that ended in a harness error (api_error,
scorer_error) are no answer of the model's and count nowhere.

- rate: the share of rows (or of turns, per="turn") where `of` holds: Wilson's
  interval per case; per turn, the wider of a cluster bootstrap over cases and
  Wilson's interval with the cases as its sample.
- mean: the mean of `of` (a metric), with a BCa bootstrap interval (cluster per turn);
  given `bounds = [lo, hi]`, over fewer than MIN_BOOT cases or cases that all agree,
  the wider of that and Hoeffding's interval, which holds at any n.
- difference: `a` minus `b` (two statistics of the claim). Paired where the runs share
  cases: then the estimate is the mean over the shared cases of each case's own
  difference (for a per-turn measure, of its share of turns), which can differ from
  a.value - b.value, with `interval` over those differences; otherwise Newcombe's
  hybrid score interval for two rates, Welch's for two means, a two-sample cluster
  bootstrap per turn.
- breaking_point: where accuracy falls halfway from ceiling to chance along `axis`
  (emulate.analysis.stats.breaking_point), with `top`, the largest `axis` measured.
- error_share: among wrong answers, the share whose error type is one of `types`,
  beside its `chance` rate (a number, or a `module:function` of the wrong rows).
- distance: a row's distance to reference `to` minus its distance to the nearest
  other reference (`metrics` names each reference's distance column), paired per row;
  below 0 means nearer `to`.
- python: `function = "module:function"`, called with (rows by run, statistics so
  far, the table's other fields); it returns a Stat.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from emulate.analysis.stats import bootstrap_ci, breaking_point, wilson
from emulate.case import Row
from emulate.errors import EmulateError
from emulate.probe import HARNESS_ERRORS

from .expr import Attributes, Expression, Unknown, parse
from .spec import StatSpec

BOOT = 2000  # resamples of a cluster bootstrap
PAIRED_SHARE = 0.5  # runs are paired when this share of each side's cases is shared
MIN_BOOT = 10  # fewer values than this, and a bounded measure's interval is Hoeffding's


@dataclass(frozen=True)
class Units:
    """A measure's data per case: the case's key, the sum of its values and their count
    (1 for a case-level measure; its matching turns for a turn-level one)."""

    keys: tuple[str, ...]
    sums: np.ndarray
    counts: np.ndarray
    binary: bool  # every value is 0 or 1 (a rate)
    bounds: tuple[float, float] | None = None  # the range of a case's value, if known

    @property
    def per_case(self) -> np.ndarray:
        return self.sums / self.counts

    @property
    def one_per_case(self) -> bool:
        return bool(np.all(self.counts == 1))


@dataclass(frozen=True)
class Stat(Attributes):
    """A statistic's estimate, 95% interval and n; `extra` holds what its kind adds
    (a breaking point's `top`, an error share's `chance`, ...). In a rule, the name
    alone is `value`; `.low`, `.high`, `.n` and each extra are its fields."""

    name: str
    kind: str
    value: float
    low: float
    high: float
    n: int
    extra: Mapping[str, Any] = field(default_factory=dict)
    units: Units | None = field(default=None, compare=False, repr=False)

    def attribute(self, name: str) -> Any:
        if name in ("value", "low", "high", "n"):
            return getattr(self, name)
        if name in self.extra:
            return self.extra[name]
        raise Unknown(f"{self.name}.{name}")

    def scalar(self) -> float:
        return self.value

    def project(self, factor: float, width: float = 1.0) -> Stat:
        """The statistic with `factor` times its cases: the same estimate, its interval
        narrowed by sqrt(factor) (and scaled by `width`, for a power target), as a power
        estimate assumes; its counts scaled by `factor`."""
        shrink = width / math.sqrt(factor)

        def grown(k: str, v: Any) -> Any:
            if isinstance(v, Stat):
                return v.project(factor, width)
            return round(v * factor) if k in ("cases", "count") else v

        return replace(
            self,
            low=self.value - (self.value - self.low) * shrink,
            high=self.value + (self.high - self.value) * shrink,
            n=round(self.n * factor),
            extra={k: grown(k, v) for k, v in self.extra.items()},
        )

    def describe(self) -> str:
        if math.isnan(self.value):
            why = self.extra.get("reason")
            return f"{self.name} none (n={self.n}{': ' + why if why else ''})"
        return f"{self.name} {_num(self.value)} [{_num(self.low)}, {_num(self.high)}] n={self.n}"


def _num(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.3g}"


# --- rows into units ---------------------------------------------------------------------


def answered(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.score.error_type not in HARNESS_ERRORS]


def row_env(row: Row) -> dict[str, Any]:
    """What a `where` or `of` can name: the case's parameters, covariates and chance,
    the score's metrics, `correct` and `error_type`."""
    return {
        **row.case.params,
        **row.case.covariates,
        **row.score.metrics,
        "correct": row.score.correct,
        "error_type": row.score.error_type,
        "chance": row.case.chance,
    }


def case_key(row: Row) -> str:
    """A case's content (inputs, truth, seed): equal across runs that ask the same case,
    whatever their parameters that only shape the prompt are called."""
    body = json.dumps([row.case.inputs, row.case.truth, row.case.seed], sort_keys=True,
                      default=_plain)  # fmt: skip
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """JSON for what a typed case holds: arrays in full (str() would elide them)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__dataclass_fields__"):
        return {f: getattr(value, f) for f in value.__dataclass_fields__}
    return str(value)


def _holds(expr: Expression | None, env: Mapping[str, Any], where: str) -> Any:
    if expr is None:
        return True
    try:
        return expr(env)
    except Unknown as err:
        raise EmulateError(
            f"{where}: {expr.text!r} names {err}, which these rows do not have "
            f"(they have {', '.join(sorted(env))})"
        ) from None
    except TypeError:
        return None  # a missing metric (None) compared: the row does not count


def units(rows: Sequence[Row], fields: Mapping[str, Any], where: str) -> Units:
    """Each case's sum and count of `of` over the rows (or turns) where `where` holds,
    at the top (bottom) value of an axis when `top` (`bottom`) names one."""
    of = parse(str(fields.get("of", "correct")), where)
    keep = parse(str(fields["where"]), where) if fields.get("where") else None
    per = fields.get("per", "case")
    if per not in ("case", "turn"):
        raise EmulateError(f"{where}: per={per!r}; use case or turn")
    chosen = _at_extreme(answered(rows), fields, where)
    keys, sums, counts, binary = [], [], [], True
    seen: dict[str, int] = {}
    for row in chosen:
        env = row_env(row)
        turns = row.score.parsed if per == "turn" else [{}]
        if per == "turn" and not isinstance(turns, list):
            raise EmulateError(f"{where}: per=turn, but {row.case.probe} rows keep no turns")
        total, count = 0.0, 0
        for turn in turns:
            here = {**env, **turn} if isinstance(turn, dict) else env
            if not _holds(keep, here, where):
                continue
            value = _holds(of, here, where)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            binary = binary and value in (0, 1)
            total, count = total + float(value), count + 1
        if count:
            key = case_key(row)
            # The same case asked twice (equal seeds of equal cells) pairs in order.
            seen[key] = seen.get(key, 0) + 1
            keys.append(f"{key}#{seen[key]}")
            sums.append(total)
            counts.append(count)
    bounds = fields.get("bounds")
    if bounds is not None and not (isinstance(bounds, list) and len(bounds) == 2):
        raise EmulateError(f"{where}: bounds must be [low, high], the range of the values")
    known = (0.0, 1.0) if binary else (float(bounds[0]), float(bounds[1])) if bounds else None
    return Units(tuple(keys), np.asarray(sums, float), np.asarray(counts, float), binary, known)


def _at_extreme(rows: list[Row], fields: Mapping[str, Any], where: str) -> list[Row]:
    for side, pick in (("top", max), ("bottom", min)):
        axis = fields.get(side)
        if axis is None:
            continue
        values: list[Any] = [row_env(r).get(axis) for r in rows]
        if any(v is None for v in values):
            raise EmulateError(f"{where}: {side}={axis!r} is not a parameter of every row")
        if values:
            end = pick(values)
            rows = [r for r, v in zip(rows, values, strict=True) if v == end]
    return rows


# --- the kinds ---------------------------------------------------------------------------


def _cluster_boot(u: Units, seed: int) -> tuple[float, float]:
    """Percentile interval of sum/count with cases resampled (turns stay together)."""
    if len(u.keys) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(u.keys), size=(BOOT, len(u.keys)))
    ratios = u.sums[pick].sum(axis=1) / u.counts[pick].sum(axis=1)
    low, high = np.quantile(ratios, [0.025, 0.975])
    return float(low), float(high)


def rate(spec: StatSpec, rows: Sequence[Row], seed: int = 0) -> Stat:
    u = units(rows, spec.fields, spec.where)
    if not u.binary:
        raise EmulateError(f"{spec.where}: `of` is not true/false on every row; use kind=mean")
    n_units = int(u.counts.sum())
    value = float(u.sums.sum() / n_units) if n_units else math.nan
    if u.one_per_case:
        low, high = wilson(int(u.sums.sum()), n_units)
    else:
        # Turns of one case are not independent. The cluster bootstrap says so, but
        # collapses to a point where every turn agrees; Wilson's interval with the cases
        # as the sample (every turn of a case alike, the worst case) does not. The wider
        # of the two.
        boot_low, boot_high = _cluster_boot(u, seed)
        w_low, w_high = wilson(round(value * len(u.keys)), len(u.keys))
        low, high = min(_or(boot_low, w_low), w_low), max(_or(boot_high, w_high), w_high)
    return Stat(spec.name, "rate", value, low, high, n_units, {"cases": len(u.keys)}, u)


def hoeffding(value: float, n: int, span: float) -> tuple[float, float]:
    """Hoeffding's 95% interval for a mean of n independent values in a range `span`
    wide: valid at any n, where a bootstrap of a few values (or of values that all
    agree) collapses to a point."""
    half = span * math.sqrt(math.log(2 / 0.05) / (2 * n))
    return value - half, value + half


def _small(values: np.ndarray) -> bool:
    return len(values) < MIN_BOOT or bool(np.ptp(values) == 0)


def interval(values: np.ndarray, bounds: tuple[float, float] | None,
             seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """A 95% interval for the mean of one value per case: BCa bootstrap; over fewer
    than MIN_BOOT values Student's t (a bootstrap of a few values is too narrow).
    Values that all agree, or are few, take Hoeffding's interval where their range is
    known (`bounds`), and have none (NaN) where it is not: agreement alone says
    nothing of the spread."""
    n = len(values)
    if n == 0:
        return (math.nan, math.nan)
    flat = bool(np.ptp(values) == 0)
    if n >= MIN_BOOT:
        low, high = bootstrap_ci(values.tolist(), seed=seed)
    elif not flat:
        from scipy.stats import t

        sem = float(np.std(values, ddof=1)) / math.sqrt(n)
        low, high = (float(x) for x in t.interval(0.95, n - 1, loc=values.mean(), scale=sem))
    else:
        low = high = math.nan
    if bounds is not None and (flat or n < MIN_BOOT):
        lo, hi = bounds
        h_low, h_high = hoeffding(float(values.mean()), n, hi - lo)
        return max(lo, min(_or(low, h_low), h_low)), min(hi, max(_or(high, h_high), h_high))
    return low, high


def _or(x: float, default: float) -> float:
    return default if math.isnan(x) else x


def mean(spec: StatSpec, rows: Sequence[Row], seed: int = 0) -> Stat:
    u = units(rows, spec.fields, spec.where)
    n_units = int(u.counts.sum())
    value = float(u.sums.sum() / n_units) if n_units else math.nan
    if u.one_per_case:
        low, high = interval(u.sums, u.bounds, seed)
    else:
        low, high = _cluster_boot(u, seed)
        if u.bounds is not None and len(u.keys) and _small(u.per_case):
            h_low, h_high = hoeffding(value, len(u.keys), u.bounds[1] - u.bounds[0])
            low = max(u.bounds[0], min(_or(low, h_low), h_low))
            high = min(u.bounds[1], max(_or(high, h_high), h_high))
    return Stat(spec.name, "mean", value, low, high, n_units, {"cases": len(u.keys)}, u)


def newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 (1998, method 10), from the two
    Wilson intervals."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1)
    l2, u2 = wilson(k2, n2)
    d = p1 - p2
    return (d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2))


def difference(spec: StatSpec, done: Mapping[str, Stat], seed: int = 0) -> Stat:
    a, b = (_earlier(spec, done, side) for side in ("a", "b"))
    ua, ub = a.units, b.units
    if ua is None or ub is None or not len(ua.keys) or not len(ub.keys):
        return Stat(spec.name, "difference", math.nan, math.nan, math.nan, 0,
                    {"paired": False, "reason": "a side has no rows"})  # fmt: skip
    index_b = {k: i for i, k in enumerate(ub.keys)}
    shared = [(i, index_b[k]) for i, k in enumerate(ua.keys) if k in index_b]
    paired = len(shared) >= PAIRED_SHARE * max(len(ua.keys), len(ub.keys))
    if paired:
        ia, ib = (np.asarray(x) for x in zip(*shared, strict=True))
        d = ua.per_case[ia] - ub.per_case[ib]
        span = None  # the range of a difference of two bounded measures
        if ua.bounds is not None and ub.bounds is not None:
            span = (ua.bounds[0] - ub.bounds[1], ua.bounds[1] - ub.bounds[0])
        low, high = interval(d, span, seed)
        return Stat(spec.name, "difference", float(d.mean()), low, high, len(d),
                    {"paired": True}, Units(tuple(ua.keys[i] for i in ia), d,
                                            np.ones(len(d)), False))  # fmt: skip
    value = a.value - b.value
    if ua.one_per_case and ub.one_per_case and ua.binary and ub.binary:
        low, high = newcombe(int(ua.sums.sum()), len(ua.keys), int(ub.sums.sum()), len(ub.keys))
    elif ua.one_per_case and ub.one_per_case and len(ua.keys) > 1 and len(ub.keys) > 1:
        low, high = _welch(ua.sums, ub.sums)
    else:
        low, high = _two_sample_boot(ua, ub, seed)
        if ua.binary and ub.binary:  # per turn: no narrower than the cases alone allow
            na, nb = len(ua.keys), len(ub.keys)
            w_low, w_high = newcombe(round(a.value * na), na, round(b.value * nb), nb)
            low, high = min(low, w_low), max(high, w_high)
    return Stat(spec.name, "difference", value, low, high, min(len(ua.keys), len(ub.keys)),
                {"paired": False})  # fmt: skip


def _welch(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy.stats import ttest_ind

    if np.ptp(x) == 0 and np.ptp(y) == 0:
        # No spread seen on either side: a point only over enough cases (see interval).
        d = float(x.mean() - y.mean())
        return (d, d) if min(len(x), len(y)) >= MIN_BOOT else (math.nan, math.nan)
    ci = ttest_ind(x, y, equal_var=False).confidence_interval(0.95)
    return float(ci.low), float(ci.high)


def _two_sample_boot(ua: Units, ub: Units, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)

    def ratios(u: Units) -> np.ndarray:
        pick = rng.integers(0, len(u.keys), size=(BOOT, len(u.keys)))
        return np.asarray(u.sums[pick].sum(axis=1) / u.counts[pick].sum(axis=1))

    low, high = np.quantile(ratios(ua) - ratios(ub), [0.025, 0.975])
    return float(low), float(high)


def _earlier(spec: StatSpec, done: Mapping[str, Stat], side: str) -> Stat:
    name = spec.fields.get(side)
    if not isinstance(name, str) or name not in done:
        raise EmulateError(
            f"{spec.where}: `{side}` must name a statistic listed before it "
            f"({', '.join(done) or 'none yet'})"
        )
    return done[name]


def breaking(spec: StatSpec, rows: Sequence[Row], seed: int = 0) -> Stat:
    axis = spec.fields.get("axis")
    if not isinstance(axis, str):
        raise EmulateError(f"{spec.where}: a breaking point needs `axis`, a parameter")
    u_rows = answered(rows)
    given = [row_env(r).get(axis) for r in u_rows]
    if any(not isinstance(v, (int, float)) for v in given):
        raise EmulateError(f"{spec.where}: axis {axis!r} is not a number on every row")
    x = [float(v) for v in given if isinstance(v, (int, float))]
    y = [bool(r.score.correct) for r in u_rows]
    chances = [r.case.chance for r in u_rows if r.case.chance is not None]
    chance = float(spec.fields.get("chance", np.mean(chances) if chances else 0.0))
    bp = breaking_point(x, y, chance=chance, seed=seed)
    extra: dict[str, Any] = {"top": max(x) if x else math.nan, "bottom": min(x) if x else math.nan,
             "ceiling": bp.ceiling, "chance": chance}  # fmt: skip
    if bp.reason:
        extra["reason"] = bp.reason
    return Stat(spec.name, "breaking_point", bp.midpoint, bp.low, bp.high, bp.n, extra)


def error_share(spec: StatSpec, rows: Sequence[Row], seed: int = 0) -> Stat:
    types = spec.fields.get("types")
    if not isinstance(types, list) or not types:
        raise EmulateError(f"{spec.where}: an error share needs `types`, a list of error types")
    wrong = [r for r in answered(rows) if not r.score.correct]
    k = sum(r.score.error_type in types for r in wrong)
    chance = spec.fields.get("chance", 0.0)
    if isinstance(chance, str):
        chance = named_function(chance, spec.where)(wrong) if wrong else math.nan
    value = k / len(wrong) if wrong else math.nan
    low, high = wilson(k, len(wrong))
    return Stat(spec.name, "error_share", value, low, high, len(wrong),
                {"chance": float(chance), "count": k})  # fmt: skip


def distance(spec: StatSpec, rows: Sequence[Row], seed: int = 0) -> Stat:
    metrics, to = spec.fields.get("metrics"), spec.fields.get("to")
    if not isinstance(metrics, dict) or to not in metrics or len(metrics) < 2:
        raise EmulateError(
            f"{spec.where}: a distance needs `metrics` (reference = its distance column, "
            "two or more) and `to`, one of those references"
        )
    per_ref = {
        ref: mean(StatSpec(ref, "mean", {**spec.fields, "of": col}, spec.where), rows, seed)
        for ref, col in metrics.items()
    }
    others = {r: s for r, s in per_ref.items() if r != to and not math.isnan(s.value)}
    nearest = min(per_ref, key=lambda r: (math.isnan(per_ref[r].value), per_ref[r].value))
    extra: dict[str, Any] = {"nearest": nearest, **per_ref}
    if not others or math.isnan(per_ref[to].value):
        return Stat(spec.name, "distance", math.nan, math.nan, math.nan, 0, extra)
    other = min(others, key=lambda r: others[r].value)
    extra["other"] = other
    diff = difference(StatSpec(spec.name, "difference", {"a": to, "b": other}, spec.where),
                      per_ref, seed)  # fmt: skip
    return replace(diff, kind="distance", extra={**extra, "paired": diff.extra.get("paired")})


def named_function(path: str, where: str) -> Callable[..., Any]:
    """`module:function`, imported; a clear error when it is not there."""
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise EmulateError(f"{where}: cannot load {path!r} ({err}); use module:function") from None


def compute(
    spec: StatSpec, runs: Mapping[str, Sequence[Row]], done: Mapping[str, Stat], seed: int = 0
) -> Stat:
    """One statistic of a claim, over its runs' rows and the statistics before it."""
    if spec.kind == "difference":
        return difference(spec, done, seed)
    if spec.kind == "python":
        fn = named_function(str(spec.fields.get("function", "")), spec.where)
        got = fn(runs, done, **{k: v for k, v in spec.fields.items() if k != "function"})
        if not isinstance(got, Stat):
            raise EmulateError(f"{spec.where}: {spec.fields['function']} returned no Stat")
        return replace(got, name=spec.name)
    kinds: dict[str, Callable[[StatSpec, Sequence[Row], int], Stat]] = {
        "rate": rate, "mean": mean, "breaking_point": breaking, "error_share": error_share,
        "distance": distance,
    }  # fmt: skip
    if spec.kind not in kinds:
        raise EmulateError(
            f"{spec.where}: kind {spec.kind!r}; use {', '.join([*kinds, 'difference', 'python'])}"
        )
    run = spec.fields.get("run")
    if run is None:
        raise EmulateError(f"{spec.where}: name the `run` it reads")
    return kinds[spec.kind](spec, runs[run], seed)
