"""Curve statistics: pure numpy/scipy functions over 1-D arrays.

No MLflow, no I/O, no rules. Every test here answers one question about one
curve (or a pair of curves) and returns a small frozen dataclass that carries
the statistic, its p-value where there is one, and an effect size: with
10^4 points everything is "significant", so no decision is taken on a p-value
alone.

Long curves are reduced to block medians (`block_medians`) before any test:
the tests then cost the same on 100 or 100,000 points, the medians shrug off
single spikes, and the O(n^2) estimators (Theil-Sen) stay cheap.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

#: MLflow stores +/-Inf as +/-1.797e308 (the largest double); anything this large is Inf.
MLFLOW_INF = 1.7976931348623157e308
_INF_THRESHOLD = 1e308


def _scipy_stats():
    """scipy.stats, imported when first needed (ties in a ranking, the epoch-periodicity test):
    it takes ~1.3 s to import, which an audit that skips every run never needs to pay."""
    from scipy import stats

    return stats


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), from scipy's survival function (a sum of math.comb terms
    overflows a float from about a thousand trials)."""
    if k <= 0:
        return 1.0
    return float(_scipy_stats().binom.sf(k - 1, n, p))


# scipy.stats.norm is slow per call; the stdlib's is exact and cheap
_STD_NORMAL = NormalDist()

#: default number of blocks a long curve is reduced to before testing
DEFAULT_BLOCKS = 100


def normalize_nonfinite(values: np.ndarray) -> np.ndarray:
    """Return a float copy in which MLflow's stand-ins for Inf (+/-1.797e308) are real Inf."""
    out = np.asarray(values, dtype=float).copy()
    out[out >= _INF_THRESHOLD] = np.inf
    out[out <= -_INF_THRESHOLD] = -np.inf
    return out


@dataclass(frozen=True)
class NonFinite:
    """Where a curve stops being a number."""

    first_index: int | None  # index of the first NaN/Inf, None when all finite
    count: int  # how many points are NaN/Inf
    kind: str | None  # "nan", "inf" or None


def find_nonfinite(values: np.ndarray) -> NonFinite:
    """Locate the first NaN or Inf (MLflow's 1.797e308 counts as Inf)."""
    v = normalize_nonfinite(values)
    bad = ~np.isfinite(v)
    if not bad.any():
        return NonFinite(None, 0, None)
    first = int(np.argmax(bad))
    kind = "nan" if math.isnan(v[first]) else "inf"
    return NonFinite(first, int(bad.sum()), kind)


def block_medians(x: np.ndarray, y: np.ndarray, max_blocks: int = DEFAULT_BLOCKS) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a curve to at most `max_blocks` (x, median y) points of equal point count.

    Non-finite values are dropped first. Curves no longer than `max_blocks` come back as they are.
    """
    x = np.asarray(x, dtype=float)
    y = normalize_nonfinite(y)
    keep = np.isfinite(y) & np.isfinite(x)
    x, y = x[keep], y[keep]
    n = len(y)
    if n <= max_blocks:
        return x, y
    # Blocks of equal size: the first ones q points, the last n % max_blocks ones q + 1, each
    # group reshaped into a matrix so that one vectorised median per group does the work
    # (np.nanmedian on a padded matrix took a quarter of an audit's time).
    q, r = divmod(n, max_blocks)
    split = (max_blocks - r) * q
    x_sorted = bool(np.all(x[1:] >= x[:-1]))
    xb = np.concatenate(
        [
            _row_medians(x[:split].reshape(-1, q), x_sorted),
            _row_medians(x[split:].reshape(-1, q + 1), x_sorted) if r else np.empty(0),
        ]
    )
    yb = np.concatenate(
        [_row_medians(y[:split].reshape(-1, q)), _row_medians(y[split:].reshape(-1, q + 1)) if r else np.empty(0)]
    )
    return xb, yb


def _row_medians(a: np.ndarray, rows_sorted: bool = False) -> np.ndarray:
    """The median of each row of a NaN-free matrix: np.median's answer, without its per-call
    overhead (an audit takes a few hundred thousand of them); sorted rows need no partition."""
    q = a.shape[1]
    k = q // 2
    if not rows_sorted:
        a = np.partition(a, (k - 1, k) if q % 2 == 0 else k, axis=1)
    return a[:, k] if q % 2 else (a[:, k - 1] + a[:, k]) / 2.0


def median(a: np.ndarray) -> np.floating:
    """np.median of a 1-D float array without its per-call overhead (an audit takes some fifty
    per run, most on a few dozen points): the same partition (same kth, so that even the sign of
    a zero among ties comes out the same) and np.mean's sum of the middle one or two, halved.
    Arrays holding NaN, or empty, go to np.median itself (its NaN and warning behaviour)."""
    a = np.asarray(a, dtype=float)
    n = a.size
    if n == 0 or a.ndim != 1:
        return np.median(a)
    k = n // 2
    part = np.partition(a, [k - 1, k, -1] if n % 2 == 0 else [k, -1])
    if np.isnan(part[-1]):
        return np.median(a)
    # np.mean sums from 0.0 (so a -0.0 comes out 0.0), then divides by the count
    return (part[k - 1] + part[k] + 0.0) / 2.0 if n % 2 == 0 else part[k] + 0.0


def robust_noise(y: np.ndarray) -> float:
    """Point-to-point noise scale: MAD of first differences / (0.6745 * sqrt 2).

    Differencing removes the trend, the MAD ignores spikes. For a smooth curve it is ~0.
    """
    y = normalize_nonfinite(y)
    y = y[np.isfinite(y)]
    if len(y) < 3:
        return 0.0
    d = np.diff(y)
    mad = median(np.abs(d - median(d)))
    return float(mad / 0.6745 / math.sqrt(2.0))


@dataclass(frozen=True)
class Trend:
    """Mann-Kendall trend test with Hamed-Rao autocorrelation correction, plus Theil-Sen slope.

    `change` is the effect size: the Theil-Sen slope times the span of x, i.e. how much the
    fitted line rises (+) or falls (-) across the window, in the curve's own units.
    """

    n: int  # points tested (block medians)
    tau: float
    z: float
    p_value: float  # two-sided, corrected for autocorrelation
    variance_inflation: float  # Hamed-Rao n/n*, >= 1
    slope: float  # Theil-Sen slope per unit of x
    change: float  # slope * span of x
    change_low: float  # confidence bounds of `change` (90% by default, i.e. two 5% one-sided tests)
    change_high: float

    @property
    def direction(self) -> int:
        """+1 rising, -1 falling, 0 no significant trend at the 5% level."""
        if self.p_value < 0.05:
            return 1 if self.z > 0 else -1
        return 0


_NO_TREND = Trend(0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, -math.inf, math.inf)


def _mk_variance(y_sorted: np.ndarray) -> float:
    """Var(S) of Mann-Kendall's S under H0, with the correction for tied values (y sorted)."""
    n = len(y_sorted)
    ties = _tie_counts(y_sorted)
    return (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18.0


def _tie_counts(y_sorted: np.ndarray) -> np.ndarray:
    """Sizes of the groups of equal values (only groups of 2 or more) in a sorted array."""
    if len(y_sorted) < 2 or np.all(y_sorted[1:] != y_sorted[:-1]):
        return np.zeros(0)
    _, counts = np.unique(y_sorted, return_counts=True)
    return counts[counts > 1].astype(float)


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties averaged (scipy's rankdata, without its per-call overhead when there
    are no ties, which is nearly always for float curves)."""
    order = np.argsort(v, kind="stable")
    sv = v[order]
    if len(v) > 1 and np.any(sv[1:] == sv[:-1]):
        if np.isnan(sv).any():  # scipy's NaN policy (every rank NaN) stays scipy's
            return _scipy_stats().rankdata(v)
        # scipy's own "average" method, in numpy: each tie group gets the mean of the positions
        # it spans, (first + last + 1) / 2, an exact half-integer. Block medians of a quantised
        # curve tie in a run in five; importing scipy.stats for them cost ~1 s per process.
        inv = np.empty(len(v), dtype=np.intp)
        inv[order] = np.arange(len(v), dtype=np.intp)
        obs = np.r_[True, sv[1:] != sv[:-1]]
        dense = np.cumsum(obs)[inv]
        count = np.r_[np.nonzero(obs)[0], len(obs)]
        return 0.5 * (count[dense] + count[dense - 1] + 1)
    ranks = np.empty(len(v))
    ranks[order] = np.arange(1, len(v) + 1)
    return ranks


def _hamed_rao_inflation(x: np.ndarray, y: np.ndarray, slope: float, alpha: float = 0.05) -> float:
    """Hamed & Rao (1998) variance inflation n/n* from the significant rank autocorrelations
    of the detrended series, using lags up to sqrt(n) (longer lags are too noisy to estimate
    and made the plain estimator reject iid series far too often)."""
    n = len(y)
    if n < 10:
        return 1.0
    detrended = y - slope * x
    ranks = _ranks(detrended)
    r = ranks - ranks.mean()
    denom = float(np.dot(r, r))
    if denom == 0:
        return 1.0
    max_lag = max(1, int(math.sqrt(n)))
    bound = _STD_NORMAL.inv_cdf(1 - alpha / 2) / math.sqrt(n)
    total = 0.0
    for k in range(1, max_lag + 1):
        rk = float(np.dot(r[:-k], r[k:])) / denom
        if abs(rk) > bound:
            total += (n - k) * (n - k - 1) * (n - k - 2) * rk
    inflation = 1.0 + 2.0 / (n * (n - 1) * (n - 2)) * total
    # Negative autocorrelation would shrink the variance; stay conservative instead.
    return max(1.0, inflation)


def mann_kendall(
    x: np.ndarray,
    y: np.ndarray,
    max_blocks: int = DEFAULT_BLOCKS,
    confidence: float = 0.90,
) -> Trend:
    """Test for a monotonic trend of y over x.

    Long curves are first reduced to at most `max_blocks` block medians (so a raw curve's size
    never matters). S is counted exactly over the pairs of blocks, which the Theil-Sen slope
    needs anyway (it equals what `scipy.stats.kendalltau`'s tau-b gives, times its normaliser:
    a test checks this; on 100 blocks the direct count is cheaper than kendalltau's call
    overhead). Its variance is inflated by the Hamed-Rao factor so that an autocorrelated
    but trendless curve (AR(1) noise, a random walk of minibatch losses) is not called a trend.
    The Theil-Sen slope and its confidence interval (widened by the same factor) give the
    effect size.
    """
    xb, yb = block_medians(x, y, max_blocks)
    n = len(yb)
    if n < 4 or np.ptp(yb) == 0 or np.ptp(xb) == 0:
        return _NO_TREND if n < 4 or np.ptp(xb) == 0 else Trend(n, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    # S = sum over pairs of sign(dx) * sign(dy): exact, on at most `max_blocks` points (the pairs
    # are needed for the Theil-Sen slope anyway; scipy's kendalltau costs more in call overhead)
    i, j = _pairs(n)
    dx = xb[j] - xb[i]
    dy = yb[j] - yb[i]
    s = float(np.sum(np.sign(dx) * np.sign(dy)))
    ok = dx != 0
    # only four order statistics of the pairwise slopes are read (the median's two and Sen's
    # bounds): partitioned in place, not sorted (a full sort was a fifth of this function)
    slopes = dy[ok] / dx[ok]
    m = len(slopes)
    is_sorted = False
    mid = slopes
    if m:
        mid = np.partition(slopes, sorted({(m - 1) // 2, m // 2}))
        if mid[(m - 1) // 2] == 0 or mid[m // 2] == 0:
            # 0.0 and -0.0 tie: which sign comes out is np.sort's, on the slopes in pair order
            slopes = mid = np.sort(slopes)
            is_sorted = True
    slope = float((mid[(m - 1) // 2] + mid[m // 2]) / 2.0) if m else 0.0
    inflation = _hamed_rao_inflation(xb, yb, slope)
    var_s = _mk_variance(np.sort(yb)) * inflation
    if var_s <= 0:
        return _NO_TREND
    z = (s - math.copysign(1.0, s)) / math.sqrt(var_s) if s != 0 else 0.0
    p = math.erfc(abs(z) / math.sqrt(2.0))  # two-sided normal p-value
    lo, hi = _sen_interval(slopes, var_s, confidence, is_sorted)
    n0 = n * (n - 1) / 2.0
    span = float(xb[-1] - xb[0])
    return Trend(
        n=n,
        tau=float(s / n0),
        z=float(z),
        p_value=p,
        variance_inflation=float(inflation),
        slope=slope,
        change=slope * span,
        change_low=lo * span,
        change_high=hi * span,
    )


@functools.lru_cache(maxsize=256)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs i < j of n points (cached: curves come in a few lengths)."""
    i, j = np.triu_indices(n, k=1)
    i.flags.writeable = False
    j.flags.writeable = False
    return i, j


def _sen_interval(slopes: np.ndarray, var_s: float, confidence: float, is_sorted: bool = True) -> tuple[float, float]:
    """Sen's (1968) distribution-free confidence interval for the slope, from the pairwise
    slopes (sorted, or with `is_sorted` False in pair order: the two order statistics it needs
    are then partitioned out), using Var(S) (already inflated for autocorrelation)."""
    m = len(slopes)
    if m == 0:
        return -math.inf, math.inf
    z = _STD_NORMAL.inv_cdf(0.5 + confidence / 2.0)
    c = z * math.sqrt(var_s)
    lower = int(math.floor((m - c) / 2.0)) - 1
    upper = int(math.ceil((m + c) / 2.0))
    if lower < 0 or upper >= m:
        return -math.inf, math.inf
    part = slopes if is_sorted else np.partition(slopes, sorted({lower, upper}))
    if part[lower] == 0 or part[upper] == 0:
        part = slopes if is_sorted else np.sort(slopes)  # the sign of a zero: np.sort's, as above
    return float(part[lower]), float(part[upper])


@dataclass(frozen=True)
class Flatness:
    """Equivalence test for "flat": the whole confidence interval of the change across the
    window lies within +/- tolerance (two one-sided tests at 5% each)."""

    is_flat: bool
    change_low: float
    change_high: float
    tolerance: float


def flatness(
    x: np.ndarray, y: np.ndarray, tolerance: float, max_blocks: int = DEFAULT_BLOCKS, drop: float | None = None
) -> Flatness:
    """Is the curve flat to within `tolerance` (in the curve's units) over its whole span?

    "Not significantly changing" is not "flat": a short, noisy window passes no trend test and
    still may be moving. Here flatness must be shown: the 90% interval of the Theil-Sen change
    must fit inside +/- tolerance. `drop`: `window_drop(x, y, 0.0, 1.0, max_blocks)` when the
    caller has it already.
    """
    t = mann_kendall(x, y, max_blocks=max_blocks, confidence=0.90)
    if t.n < 4:
        return Flatness(False, t.change_low, t.change_high, tolerance)
    ok = (t.change_low > -tolerance) and (t.change_high < tolerance)
    # Theil-Sen's change is that of a straight line: on a window that falls steeply at its start
    # and is flat after (a "decay then flat" curve seen from before the knee) the median pairwise
    # slope is ~0 although the curve still drops by several tolerances. So the robust levels at
    # the two ends of the window must also agree to within the tolerance.
    if ok and drop is None:
        drop = window_drop(x, y, 0.0, 1.0, max_blocks)
    ok = ok and abs(drop) < tolerance
    return Flatness(bool(ok), t.change_low, t.change_high, tolerance)


@dataclass(frozen=True)
class Stall:
    """The earliest point after which a curve stays flat."""

    start_fraction: float | None  # where the flat stretch starts, as a share of the curve; None: never flat
    start_x: float | None
    level: float | None  # median of the flat stretch


def find_stall(
    x: np.ndarray,
    y: np.ndarray,
    tolerance: float,
    candidates: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    max_blocks: int = DEFAULT_BLOCKS,
) -> Stall:
    """Find the earliest candidate start (a share of the curve) whose suffix passes `flatness`.

    A coarse grid of candidates keeps this a handful of cheap tests per curve; the answer is
    stated to that grid's resolution ("flat since about 30% of training").
    """
    xb, yb = block_medians(x, y, max_blocks)
    n = len(yb)
    for frac in candidates:
        start = int(round(frac * n))
        if n - start < 6:
            break
        # the cheap half of `flatness` first: a suffix whose two ends differ by the tolerance or
        # more is not flat, whatever the trend test says (same answer, no Mann-Kendall)
        drop = window_drop(xb[start:], yb[start:], 0.0, 1.0, max_blocks)
        if abs(drop) >= tolerance:
            continue
        flat = flatness(xb[start:], yb[start:], tolerance, max_blocks, drop=drop)
        if flat.is_flat:
            return Stall(frac, float(xb[start]), float(median(yb[start:])))
    return Stall(None, None, None)


@dataclass(frozen=True)
class Levels:
    """Robust levels of a curve: where it started, its best, where it ended, and its noise."""

    start: float  # median of the first few points
    end: float  # median of the last ~5%
    best: float  # lowest block median
    best_fraction: float  # where the best block lies, as a share of the curve
    noise: float  # point-to-point noise scale of the raw finite values
    n_finite: int


def curve_levels(x: np.ndarray, y: np.ndarray, max_blocks: int = DEFAULT_BLOCKS) -> Levels | None:
    """Start/end/best levels from block medians, so single spikes do not move them."""
    y = normalize_nonfinite(y)
    finite = np.isfinite(y)
    if finite.sum() < 2:
        return None
    xb, yb = block_medians(x, y, max_blocks)
    yf = y[finite]
    head = max(1, min(len(yf) // 50, 20))
    start = float(median(yf[:head]))
    tail = max(1, len(yb) // 20)
    end = float(median(yb[-tail:]))
    i_best = int(np.argmin(yb))
    best = float(yb[i_best])
    return Levels(
        start=start,
        end=end,
        best=best,
        best_fraction=i_best / max(1, len(yb) - 1),
        noise=robust_noise(yf),
        n_finite=int(finite.sum()),
    )


def window_drop(x: np.ndarray, y: np.ndarray, a: float, b: float, max_blocks: int = DEFAULT_BLOCKS) -> float:
    """How much the curve fell between fractions a and b of its length (positive = fell),
    measured on block medians averaged over a small neighbourhood of each end."""
    _, yb = block_medians(x, y, max_blocks)
    n = len(yb)
    if n < 3:
        return 0.0
    w = max(1, n // 20)

    def level_at(frac: float) -> float:
        i = int(round(frac * (n - 1)))
        lo, hi = max(0, i - w), min(n, i + w + 1)
        return float(median(yb[lo:hi]))

    return level_at(a) - level_at(b)


@dataclass(frozen=True)
class Oscillation:
    """A periodic component tested against a red-noise (AR(1), phi >= 0) spectrum."""

    detected: bool
    period: float | None  # in points of the tested series
    power_ratio: float  # periodogram / AR(1) spectrum at the peak
    p_value: float  # Bonferroni-corrected over the tested frequencies
    amplitude: float  # peak amplitude of the component, in the curve's units
    phi: float  # fitted AR(1) coefficient of the baseline


def detect_oscillation(y: np.ndarray, alpha: float = 0.01, max_points: int = 4096) -> Oscillation:
    """Test for a periodic swing in a (detrended) curve against a red-noise baseline.

    Plain spectral peaks are everywhere in autocorrelated curves; an AR(1) spectrum with
    phi clipped to [0, 0.99] explains them, so only a peak well above it counts. A negative
    phi is not allowed into the baseline on purpose: a period-2 zig-zag is exactly the
    oscillation a too-high learning rate produces, and a negative-phi AR(1) would explain it away.
    Curves longer than `max_points` are tested on their last `max_points` points.
    """
    y = normalize_nonfinite(y)
    y = y[np.isfinite(y)]
    if len(y) > max_points:
        # the most recent stretch, at full resolution: reducing to block medians would alias a
        # fast zig-zag into a slow swing (and blocks are not evenly spaced)
        y = y[-max_points:]
    n = len(y)
    if n < 16:
        return Oscillation(False, None, 0.0, 1.0, 0.0, 0.0)
    t = np.arange(n, dtype=float)
    coef = np.polyfit(t, y, 1)
    r = y - np.polyval(coef, t)
    var = float(np.var(r))
    if var <= 0:
        return Oscillation(False, None, 0.0, 1.0, 0.0, 0.0)
    phi = float(np.clip(np.dot(r[:-1], r[1:]) / np.dot(r, r), 0.0, 0.99))
    spec = np.abs(np.fft.rfft(r)) ** 2 / n
    freqs = np.fft.rfftfreq(n)
    # skip f=0 and the two lowest frequencies: a residual curvature of the trend lives there
    sel = slice(3, len(freqs))
    f = freqs[sel]
    if len(f) == 0:
        return Oscillation(False, None, 0.0, 1.0, 0.0, phi)
    sigma2 = var * (1 - phi**2)
    baseline = sigma2 / (1 + phi**2 - 2 * phi * np.cos(2 * np.pi * f))
    ratio = spec[sel] / baseline
    k = int(np.argmax(ratio))
    # periodogram/spectrum ~ Exp(1) (chi2_2 / 2) under the null at interior frequencies
    p_single = math.exp(-float(ratio[k]))
    p = min(1.0, p_single * len(f))
    # a sinusoid of amplitude A gives |rfft|^2 = (n A / 2)^2 at an interior frequency, (n A)^2 at Nyquist
    nyquist = n % 2 == 0 and k == len(f) - 1
    amplitude = (1.0 if nyquist else 2.0) * math.sqrt(float(spec[sel][k]) / n)
    # in points of the curve as given, not of its block-median reduction
    period = 1.0 / float(f[k]) if f[k] > 0 else None
    return Oscillation(p < alpha, period, float(ratio[k]), p, amplitude, phi)


@dataclass(frozen=True)
class Overfit:
    """Train/validation divergence: Prechelt's criteria plus the trend of the gap."""

    gl: float  # generalization loss at the end, % above the best validation loss
    pq: float  # GL / training progress P_k (Prechelt's PQ)
    up: int  # consecutive validation rises at the end (Prechelt's UP counter)
    best_index: int  # index of the best validation point
    evals_after_best: int
    gap_trend: Trend  # trend of (val - train) from the best validation point on
    val_trend_after_best: Trend
    train_trend_after_best: Trend


def generalization_loss(val: np.ndarray) -> tuple[float, int]:
    """Prechelt's GL at the last point, and the index of the best point."""
    v = normalize_nonfinite(val)
    finite = np.isfinite(v)
    if not finite.any():
        return 0.0, 0
    best_i = int(np.nanargmin(np.where(finite, v, np.nan)))
    best = v[best_i]
    last = v[finite][-1]
    if best <= 0:
        return (math.inf if last > best else 0.0), best_i
    return float(100.0 * (last / best - 1.0)), best_i


def training_progress(train: np.ndarray, k: int = 5) -> float:
    """Prechelt's P_k: 1000 * (mean of the last k training errors / their min - 1)."""
    t = normalize_nonfinite(train)
    t = t[np.isfinite(t)][-k:]
    if len(t) == 0 or t.min() <= 0:
        return 0.0
    return float(1000.0 * (t.mean() / t.min() - 1.0))


def consecutive_rises(val: np.ndarray) -> int:
    """How many of the last validation evaluations each rose over the one before (UP_s)."""
    v = normalize_nonfinite(val)
    v = v[np.isfinite(v)]
    count = 0
    for i in range(len(v) - 1, 0, -1):
        if v[i] > v[i - 1]:
            count += 1
        else:
            break
    return count


def detect_overfitting(
    train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray
) -> Overfit | None:
    """Compare a validation curve with the training curve on a shared axis (x).

    The training curve is block-median smoothed and interpolated at the validation points,
    so a per-step training loss and a per-epoch validation loss can be compared.
    """
    vx = np.asarray(val_x, dtype=float)
    vy = normalize_nonfinite(val_y)
    ok = np.isfinite(vy)
    vx, vy = vx[ok], vy[ok]
    if len(vy) < 4:
        return None
    tx, ty = block_medians(train_x, train_y, max_blocks=max(DEFAULT_BLOCKS, len(vy)))
    if len(ty) < 2:
        return None
    order = np.argsort(tx)
    train_at_val = np.interp(vx, tx[order], ty[order])
    gl, best_i = generalization_loss(vy)
    # P_k over the smoothed training curve's last strip
    pk = training_progress(train_at_val, k=min(5, len(train_at_val)))
    pq = gl / pk if pk > 0 else (math.inf if gl > 0 else 0.0)
    after = slice(best_i, len(vy))
    gap = vy - train_at_val
    tr_after = tx >= vx[best_i]
    return Overfit(
        gl=gl,
        pq=float(pq),
        up=consecutive_rises(vy),
        best_index=best_i,
        evals_after_best=len(vy) - 1 - best_i,
        gap_trend=mann_kendall(vx[after], gap[after]),
        val_trend_after_best=mann_kendall(vx[after], vy[after]),
        train_trend_after_best=mann_kendall(tx[tr_after], ty[tr_after]),
    )


def benjamini_hochberg(p_values: list[float], q: float = 0.05) -> list[bool]:
    """Benjamini-Hochberg step-up: which hypotheses are discoveries at false-discovery rate q."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p)
    thresh = q * (np.arange(1, m + 1) / m)
    passed = p[order] <= thresh
    k = int(np.max(np.nonzero(passed)[0])) + 1 if passed.any() else 0
    out = np.zeros(m, dtype=bool)
    out[order[:k]] = True
    return out.tolist()


@dataclass(frozen=True)
class Divergence:
    """A curve that climbs back after its best point, or blows up."""

    detected: bool
    regained: float  # (end - best) / (start - best): share of the progress that was lost again
    growth: float  # end / start (for positive curves): > 10 is an explosion
    onset_x: float | None  # x of the best point, where the climb starts
    trend_after_best: Trend


#: share of the earlier progress a curve must lose again to count as diverging (starting point,
#: calibrated on healthy sample runs and simulated noisy healthy curves; see tests/test_stats.py)
DIVERGENCE_REGAINED = 0.5
#: end/start ratio that counts as an explosion whatever the trend test says
EXPLOSION_GROWTH = 10.0


def detect_divergence(x: np.ndarray, y: np.ndarray, max_blocks: int = DEFAULT_BLOCKS) -> Divergence:
    """Does the curve rise significantly after its best point, losing at least half of what it
    had gained (or exploding by an order of magnitude)?

    The rise must be both significant (autocorrelation-corrected Mann-Kendall on the stretch
    after the best block) and large (the regained share): noise around a converged value
    is neither.
    """
    lv = curve_levels(x, y, max_blocks)
    none = Divergence(False, 0.0, 1.0, None, _NO_TREND)
    if lv is None:
        return none
    xb, yb = block_medians(x, y, max_blocks)
    i_best = int(np.argmin(yb))
    gained = lv.start - lv.best
    rise = lv.end - lv.best
    scale = max(abs(lv.start), abs(lv.best), 1e-12)
    regained = rise / gained if gained > 1e-9 * scale else (math.inf if rise > 0.05 * scale else 0.0)
    growth = lv.end / lv.start if lv.start > 0 and lv.end > 0 else 1.0
    after = mann_kendall(xb[i_best:], yb[i_best:], max_blocks) if len(yb) - i_best >= 4 else _NO_TREND
    exploded = growth >= EXPLOSION_GROWTH
    # Progress smaller than the block medians' own wander is no progress: then "regained" is a
    # ratio of two noises, and the lowest block is just the deepest dip of the noise, after which
    # any trend test leans upward. Such a curve diverges only if it ends clearly above its start,
    # with the whole curve trending up.
    wander = robust_noise(yb) * math.sqrt(2.0)
    if gained <= max(2.0 * wander, 0.05 * scale):
        whole = mann_kendall(xb, yb, max_blocks)
        detected = exploded or (whole.direction > 0 and lv.end - lv.start > max(2.0 * wander, 0.05 * scale))
        return Divergence(bool(detected), float(regained), float(growth), float(xb[0]), whole)
    big_enough = regained >= DIVERGENCE_REGAINED and rise > max(
        3.0 * lv.noise / math.sqrt(max(1, len(yb) // 20)), 0.02 * scale
    )
    significant = after.direction > 0
    return Divergence(
        detected=bool((big_enough and significant) or exploded),
        regained=float(regained),
        growth=float(growth),
        onset_x=float(xb[i_best]),
        trend_after_best=after,
    )


@dataclass(frozen=True)
class EpochPeriodicity:
    """A pattern in a per-step curve that repeats with the epoch (e.g. the saw-tooth of data
    that arrives in the same order every epoch)."""

    detected: bool
    p_value: float  # Friedman test: epochs as blocks, position-in-epoch bins as treatments
    amplitude: float  # range of the mean phase profile, in the curve's units
    level: float  # median of the curve over the epochs tested
    epochs: int  # full epochs used
    bins: int


_NO_PERIODICITY = EpochPeriodicity(False, 1.0, 0.0, 0.0, 0, 0)
#: position-in-epoch bins (fewer when an epoch has fewer logged points)
PHASE_BINS = 12
#: fewest full epochs the test needs: fewer blocks give no power and unreliable chi-square p-values
MIN_EPOCHS = 4
#: the phase profile must swing at least this share of the curve's level to matter (starting
#: point; a shuffled run has no profile at all, see tests/test_stats.py)
PERIODIC_AMPLITUDE = 0.10


def epoch_periodicity(x: np.ndarray, y: np.ndarray, period: float, alpha: float = 1e-3) -> EpochPeriodicity:
    """Does the curve repeat a pattern every `period` steps (one epoch)?

    The curve is detrended by a centred moving mean over exactly one epoch (which removes the
    trend and leaves a pattern of that period untouched), each full epoch is cut into bins by
    position within the epoch, and a Friedman test asks whether the bins rank the same way in
    every epoch. Epochs are the blocks, so a slow trend or autocorrelated noise, which differ
    from epoch to epoch, do not make a pattern; the profile's range must also be at least 10%
    of the curve's level. Approximate: the chi-square null assumes independent points within
    an epoch; the false-positive rate on AR(1) noise is pinned in tests/test_stats.py.
    """
    y = normalize_nonfinite(np.asarray(y, dtype=float))
    x = np.asarray(x, dtype=float)
    ok = np.isfinite(y) & np.isfinite(x)
    x, y = x[ok], y[ok]
    if period <= 0 or len(y) < 16 or not np.isfinite(period):
        return _NO_PERIODICITY
    per_epoch = len(y) / max((x[-1] - x[0]) / period, 1e-12)  # logged points per epoch
    if per_epoch < 4:
        return _NO_PERIODICITY
    w = int(round(per_epoch))
    kernel = np.ones(w) / w
    trend = np.convolve(y, kernel, mode="valid")  # trend[i] = mean(y[i:i+w])
    half = w // 2
    resid = y[half : half + len(trend)] - trend
    xr = x[half : half + len(trend)]
    epoch = np.floor((xr - x[0]) / period).astype(int)
    phase = ((xr - x[0]) / period) - epoch
    bins = int(min(PHASE_BINS, w))
    b = np.minimum((phase * bins).astype(int), bins - 1)
    table = []
    for e in np.unique(epoch):
        sel = epoch == e
        if len(np.unique(b[sel])) < bins:
            continue  # a partial epoch (at the ends)
        table.append([float(np.mean(resid[sel & (b == k)])) for k in range(bins)])
    if len(table) < MIN_EPOCHS:
        return _NO_PERIODICITY
    m = np.asarray(table)
    sps = _scipy_stats()
    ranks = np.apply_along_axis(sps.rankdata, 1, m)
    n_blocks, k = m.shape
    rank_sums = ranks.sum(axis=0)
    chi2 = 12.0 / (n_blocks * k * (k + 1)) * float(np.sum(rank_sums**2)) - 3.0 * n_blocks * (k + 1)
    p = float(sps.chi2.sf(chi2, k - 1))
    profile = m.mean(axis=0)
    amplitude = float(np.ptp(profile))
    level = float(median(np.abs(y)))
    detected = p < alpha and amplitude >= PERIODIC_AMPLITUDE * max(level, 1e-12)
    return EpochPeriodicity(bool(detected), p, amplitude, level, int(n_blocks), int(k))


@dataclass(frozen=True)
class BlowUp:
    """An early explosion of a loss curve: it rose far above where it started, or turned NaN/Inf,
    near the start of the run. `start` is the level before the explosion, from which any later
    improvement must be measured (not from the explosion's peak)."""

    detected: bool
    index: int | None  # first point of the explosion (the curve's own index, non-finite points included)
    x: float | None  # its step
    start: float  # the level before it: the first finite value, or the expected first loss (ln C) when given
    peak: float  # largest value reached (inf when non-finite)
    growth: float  # peak / start (inf when non-finite)
    nonfinite: bool  # the explosion reached NaN/Inf
    end: float | None  # median of the last finite points (where the run ended up); None: none finite


#: a loss this many times above its starting level has exploded (an order of magnitude: noise,
#: warm-up bumps and the first epochs of a hard task stay within 2-3x; on the corpus `tune`
#: split, healthy and too-low sweep members never exceed 3x, too-high members reach 10x..1e14)
BLOWUP_GROWTH = 10.0
#: ... or this level, whatever the start, when the start is a classification loss (ln C is below
#: 10 for any vocabulary under 22,000 classes; a cross-entropy of 1e3 means logits of 1e3)
BLOWUP_ABSOLUTE = 1e3
#: "early": the explosion starts within this share of the curve's points (later ones are
#: divergences: `detect_divergence`)
BLOWUP_EARLY = 0.3


#: a curve that ends below this share of its expected start (ln C) learned after its first point
#: (30% below chance: further than any noise around a dead network's constant output; the
#: plateau reading's PLATEAU_MAX_IMPROVEMENT is the same share)
BLOWUP_TRAINED_AWAY = 0.7


#: `detect_blowup(isolated_ok=True)`: of this many points from one over the line, at least ISOLATED_OVER must be
#: over it. A share p of rare costly samples passes by chance at about 10 p^3 a step (measured by review over
#: 2,000 steps at batch size 1: 2% of seeds at p = 2%, 31% at p = 5%; two of three points gave 37% and 92%)
ISOLATED_WINDOW, ISOLATED_OVER = 5, 3


def detect_blowup(
    x: np.ndarray,
    y: np.ndarray,
    expected_start: float | None = None,
    classification: bool = False,
    early: float = BLOWUP_EARLY,
    isolated_ok: bool = False,
) -> BlowUp:
    """Did the curve explode early? It rises at least BLOWUP_GROWTH times above its starting
    level, or (when `expected_start` says it is a classification loss, e.g. ln C) to at least
    BLOWUP_ABSOLUTE, or turns non-finite, within the first `early` share of its points (at least
    its first 3 points count as early).

    The starting level is the first finite value, or `expected_start` when it is given and lower
    (the recorder's loss of the very first step, or ln C: a per-epoch curve whose first point
    already averages the explosion starts there, not at 1e14), except on a curve that ends below
    BLOWUP_TRAINED_AWAY of `expected_start`: it learned, and its high first point is a high first
    loss, so growth is measured from that point. The absolute level counts only for
    a `classification` loss (a regression's MSE can start in the thousands). With `isolated_ok`, a point over
    the line counts only where 3 or more of the 5 points from it are over it or non-finite (the loss of one
    sample a step: one or two rare samples' losses are no explosion; a wrecked classifier's samples cost ~0 or
    far more, most of them high); a point with fewer than 5 after-points left is read as it is. Pure numpy;
    `y` may hold NaN/Inf (MLflow's stand-ins are mapped back)."""
    y = normalize_nonfinite(np.asarray(y, dtype=float))
    x = np.asarray(x, dtype=float)
    n = len(y)
    finite = np.isfinite(y)
    none = BlowUp(False, None, None, math.nan, math.nan, 1.0, False, None)
    if n == 0 or not finite.any():
        return (
            none if n == 0 else BlowUp(True, 0, float(x[0]), expected_start or math.nan, math.inf, math.inf, True, None)
        )
    first = float(y[finite][0])
    start = first
    absolute_ok = classification
    # the expected start stands in only for a curve on its scale: one that comes back near it
    # (a loss logged as a sum over batches starts far above the first step's loss and stays there)
    if expected_start is not None and 0 < expected_start < first and np.min(y[finite]) <= 2 * expected_start:
        start = float(expected_start)
    end_vals = y[finite][-max(1, min(5, int(finite.sum()) // 5 or 1)) :]
    end = float(median(end_vals))
    horizon = max(3, int(math.ceil(early * n)))
    # a first point high above the expected start, on a curve that ends well below that start
    # (it learned: BLOWUP_TRAINED_AWAY), is a high first loss the run trained away from (raw-scale
    # inputs, a large output layer: see initial_loss_mismatch), not an explosion: that first
    # point is the only evidence, and on a per-step curve it is computed before any update. A
    # network destroyed in its first epoch ends at chance, not well below it.
    if start < first and end < BLOWUP_TRAINED_AWAY * start:
        start = first  # growth is then measured from the first point itself
    # the points over the line (NaN compares False: non-finite points are read on their own below)
    over = (start > 0) & ((y >= BLOWUP_GROWTH * start) | (absolute_ok & (y >= BLOWUP_ABSOLUTE)))
    for i in range(min(n, horizon)):
        if not finite[i]:
            return BlowUp(True, i, float(x[i]), start, math.inf, math.inf, True, end)
        if over[i]:
            win = (over | ~finite)[i : i + ISOLATED_WINDOW]
            if isolated_ok and len(win) == ISOLATED_WINDOW and int(win.sum()) < ISOLATED_OVER:
                continue  # one or two samples' losses: most of the points from here are back under the line
            peak = float(np.max(y[i:][finite[i:]]))
            nf = bool((~finite).any())
            return BlowUp(
                True, i, float(x[i]), start, math.inf if nf else peak, math.inf if nf else peak / start, nf, end
            )
    return BlowUp(
        False,
        None,
        None,
        start,
        float(np.max(y[finite])),
        float(np.max(y[finite])) / start if start > 0 else 1.0,
        False,
        end,
    )


@dataclass(frozen=True)
class Stuck:
    """A loss whose tail does not move at all, or sits at the loss of a uniform guess (ln k):
    no learning whatever, which points at a bug (no gradient reaches the weights, the loss gets
    the wrong input) or at a run destroyed early, not at a slow optimiser."""

    constant: bool  # the tail is exactly constant (relative spread below CONSTANT_TOLERANCE)
    chance_k: int | None  # k when the tail sits at ln k (a uniform guess over k classes); None: not at chance
    known_classes: bool  # k is the run's known class count (not a guess among small k)
    level: float  # the tail's median
    spread: float  # the tail's relative spread (max - min) / |median|
    #: the tail never got below the loss of a uniform guess over the known class count (its lowest
    #: point is above ln C less CHANCE_TOLERANCE): the model learned nothing (or was destroyed),
    #: even when the tail is noisy or sits above chance; False when the class count is unknown
    no_better_than_chance: bool = False
    #: a regression's reading: the targets' variance (the MSE of predicting their mean) the loss
    #: sits at or above (`helpers.val_at_mean`); None for a classifier's or a constant loss
    variance: float | None = None
    #: ... or, without the targets' variance, the best validation R² of the tail (`helpers.val_r2_at_mean`)
    r2: float | None = None

    @property
    def stuck(self) -> bool:
        return self.constant or self.chance_k is not None


#: an exactly constant tail: float32 rounding of a loss that never changes (1e-6 relative), with
#: room for the averaging of per-batch values of a fixed output over unequal batches
CONSTANT_TOLERANCE = 1e-5
#: a tail within this share of ln C (the known class count) sits at chance: 2% (ln 2 = 0.693 vs a
#: collapsed BERT's 0.685; a model that learned anything is more than 2% below chance on balanced data)
CHANCE_TOLERANCE = 0.02
#: without a known class count, only small k are tried and more tightly (ln k for k = 2..10 are at
#: least 5% apart, so a 0.5% band names one k and rarely catches a learning curve by accident)
CHANCE_TOLERANCE_GUESS = 0.005
CHANCE_MAX_K_GUESS = 10
#: the tail is flat enough to be "sitting" somewhere: relative spread of its points
STUCK_MAX_SPREAD = 0.05
#: the tail: the last half of the finite points (at least 3)
STUCK_TAIL = 0.5


def stuck_loss(y: np.ndarray, n_classes: int | None = None, tail: float = STUCK_TAIL) -> Stuck | None:
    """Read whether a loss is stuck: its tail (the last `tail` share of its finite points, at
    least 3) exactly constant, or sitting within a tight band of ln C for the known class count
    C (or of ln k, k = 2..10, with a tighter band, when C is unknown). None: too few points.
    A tail exactly 0 after a positive loss is not constant in this sense: it is a loss fitted to
    its floor (a cross-entropy of confident right answers rounds to 0 in float32), not one that
    never changed."""
    y = normalize_nonfinite(np.asarray(y, dtype=float))
    y = y[np.isfinite(y)]
    if len(y) < 3:
        return None
    t = y[-max(3, int(math.ceil(tail * len(y)))) :]
    level = float(median(t))
    scale = max(abs(level), 1e-12)
    spread = float(np.ptp(t)) / scale
    constant = spread <= CONSTANT_TOLERANCE and not (level == 0.0 and float(np.max(y)) > 0.0)
    chance_k, known = None, False
    if spread <= STUCK_MAX_SPREAD and level > 0:
        if n_classes is not None and n_classes > 1:
            if abs(level - math.log(n_classes)) <= CHANCE_TOLERANCE * math.log(n_classes):
                chance_k, known = int(n_classes), True
        else:
            for k in range(2, CHANCE_MAX_K_GUESS + 1):
                if abs(level - math.log(k)) <= CHANCE_TOLERANCE_GUESS * math.log(k):
                    chance_k = k
                    break
    above = bool(
        n_classes is not None and n_classes > 1 and float(np.min(t)) >= (1 - CHANCE_TOLERANCE) * math.log(n_classes)
    )
    return Stuck(bool(constant), chance_k, known, level, spread, above)
