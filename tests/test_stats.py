"""Curve statistics: known answers, robustness on awkward inputs, and pinned false-positive
rates on simulated healthy (null) curves.

The false-positive tests simulate with fixed seeds, so they are deterministic; each bound was
set after measuring the rate with exactly the simulation below (the measured number is in the
comment next to it) and leaves headroom of roughly three binomial standard deviations or more,
so that a legitimate small change does not trip it but losing the autocorrelation correction,
the red-noise baseline or the size/significance checks does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from mlflow_nnaudit.auditor import stats as S

SEED = 20240611


def rng_for(*key: float) -> np.random.Generator:
    """A generator seeded by SEED and the configuration, so each case has its own fixed stream."""
    return np.random.default_rng([SEED, *(int(round(k * 1000)) for k in key)])


def ar1(rng: np.random.Generator, n: int, phi: float, sd: float = 1.0) -> np.ndarray:
    """Stationary AR(1) noise with marginal standard deviation `sd` (phi = 0: iid normal)."""
    e = rng.standard_normal(n)
    if phi == 0:
        return sd * e
    y_before = rng.standard_normal() / math.sqrt(1.0 - phi**2)  # draw from the stationary law
    y, _ = lfilter([1.0], [1.0, -phi], e, zi=[phi * y_before])
    return sd * math.sqrt(1.0 - phi**2) * y


def healthy_loss(rng: np.random.Generator, n: int, phi: float, sd: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """A healthy per-step minibatch loss: exponential decay from 2.3 to a floor of 0.3 (time
    constant 15% of the run) plus AR(1) noise of marginal sd `sd` (half the floor by default)."""
    t = np.arange(n, dtype=float)
    return t, 0.3 + 2.0 * np.exp(-t / (0.15 * n)) + ar1(rng, n, phi, sd)


def exp_decay(n: int, tau_share: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n, dtype=float)
    return t, 0.3 + 2.0 * np.exp(-t / (tau_share * n))


# --------------------------------------------------------------------------------------------
# Non-finite values
# --------------------------------------------------------------------------------------------


def test_normalize_nonfinite_turns_mlflow_stand_ins_into_inf():
    raw = np.array([1.0, S.MLFLOW_INF, -S.MLFLOW_INF, np.nan, 1e307, -5.0])
    out = S.normalize_nonfinite(raw)
    assert out[0] == 1.0 and out[4] == 1e307 and out[5] == -5.0
    assert np.isposinf(out[1]) and np.isneginf(out[2]) and np.isnan(out[3])
    assert raw[1] == S.MLFLOW_INF  # input untouched
    assert S.normalize_nonfinite([1, 2]).dtype == float


def test_find_nonfinite_first_index_and_kind():
    assert S.find_nonfinite(np.array([3.0, 2.0, 1.0])) == S.NonFinite(None, 0, None)
    assert S.find_nonfinite(np.array([3.0, 2.0, np.nan, np.inf, 1.0])) == S.NonFinite(2, 2, "nan")
    assert S.find_nonfinite(np.array([3.0, S.MLFLOW_INF, np.nan])) == S.NonFinite(1, 2, "inf")
    assert S.find_nonfinite(np.array([3.0, -S.MLFLOW_INF])) == S.NonFinite(1, 1, "inf")
    assert S.find_nonfinite(np.full(5, np.nan)) == S.NonFinite(0, 5, "nan")
    assert S.find_nonfinite(np.array([])) == S.NonFinite(None, 0, None)


def test_mlflow_inf_in_raw_values_is_dropped_like_inf():
    # Every function must treat 1.797e308 as Inf (dropped), not as a huge finite loss: a stand-in
    # left in once overflowed the block medians and the oscillation periodogram.
    t, clean = exp_decay(300, 0.2)
    with_stand_ins = clean.copy()
    with_inf = clean.copy()
    for i in (50, 150, 151):
        with_stand_ins[i] = S.MLFLOW_INF
        with_inf[i] = np.inf
    with np.errstate(all="raise"):
        for fn in (
            lambda y: S.block_medians(t, y)[1],
            lambda y: S.mann_kendall(t, y).change,
            lambda y: S.curve_levels(t, y).end,
            lambda y: S.detect_oscillation(y).power_ratio,
            lambda y: S.detect_divergence(t, y).regained,
            lambda y: S.robust_noise(y),
            lambda y: S.generalization_loss(y[::10])[0],
        ):
            np.testing.assert_allclose(fn(with_stand_ins), fn(with_inf))
    tail_inf = clean.copy()
    tail_inf[-20:] = S.MLFLOW_INF
    lv = S.curve_levels(t, tail_inf)
    assert lv.n_finite == 280 and math.isfinite(lv.end)


# --------------------------------------------------------------------------------------------
# Block medians
# --------------------------------------------------------------------------------------------


def test_block_medians_equal_per_block_medians():
    rng = rng_for(1)
    x = np.arange(1000, dtype=float)
    y = rng.standard_normal(1000)
    xb, yb = S.block_medians(x, y, max_blocks=100)
    assert len(yb) == 100
    np.testing.assert_allclose(yb, np.median(y.reshape(100, 10), axis=1))
    np.testing.assert_allclose(xb, np.median(x.reshape(100, 10), axis=1))


def test_block_medians_uneven_blocks_are_contiguous_and_balanced():
    n = 1057
    x = np.arange(n, dtype=float)
    xb, yb = S.block_medians(x, x, max_blocks=100)  # y = x: each median is its block's midpoint
    assert len(yb) == 100
    np.testing.assert_array_equal(xb, yb)
    assert yb[0] == pytest.approx(np.median(np.arange(10)))  # first block: points 0..9 (n // 100 = 10)
    d = np.diff(yb)
    assert d.min() >= 10 - 0.5 and d.max() <= 11 + 0.5  # blocks of 10 or 11 points, in order


@pytest.mark.parametrize("n", [100_000, 101, 12_345])
def test_block_medians_long_curve_at_most_max_blocks(n):
    rng = rng_for(2, n)
    y = rng.standard_normal(n)
    for m in (10, 100, 512):
        xb, yb = S.block_medians(np.arange(n), y, max_blocks=m)
        assert len(xb) == len(yb) == min(m, n)
        assert np.all(np.diff(xb) > 0)


def test_block_medians_short_curve_unchanged_and_nonfinite_dropped():
    x = np.arange(6, dtype=float)
    y = np.array([1.0, np.nan, 3.0, np.inf, 5.0, S.MLFLOW_INF])
    xb, yb = S.block_medians(x, y)
    assert xb.tolist() == [0.0, 2.0, 4.0] and yb.tolist() == [1.0, 3.0, 5.0]


def test_block_medians_shrug_off_a_spike():
    y = np.ones(1000)
    y[500] = 1e6
    _, yb = S.block_medians(np.arange(1000), y)
    assert yb.max() == 1.0


# --------------------------------------------------------------------------------------------
# Mann-Kendall trend and Theil-Sen effect size
# --------------------------------------------------------------------------------------------


def test_exponential_decay_is_a_significant_fall_of_the_right_size():
    t, y = exp_decay(2000, 1.0)  # gently curved: a straight line describes it well
    tr = S.mann_kendall(t, y)
    true_change = y[-1] - y[0]  # -1.264
    assert tr.direction == -1 and tr.p_value < 1e-3 and tr.z < 0
    assert tr.change == pytest.approx(true_change, rel=0.05)
    assert tr.change_low <= true_change <= tr.change_high < 0
    assert tr.n == 100  # tested on block medians


def test_exponential_decay_with_noise():
    rng = rng_for(3)
    t, y = exp_decay(5000, 1.0)
    tr = S.mann_kendall(t, y + 0.05 * rng.standard_normal(len(y)))
    assert tr.direction == -1
    assert tr.change == pytest.approx(y[-1] - y[0], rel=0.10)
    assert tr.change_low <= y[-1] - y[0] <= tr.change_high


def test_steep_decay_still_falls_but_change_is_the_fitted_line():
    # Theil-Sen's change is that of a straight line: on a sharply bent curve it is smaller than
    # end - start (documented behaviour, not an error). Direction must still be right.
    t, y = exp_decay(2000, 0.2)
    tr = S.mann_kendall(t, y)
    assert tr.direction == -1
    assert 0.3 * (y[0] - y[-1]) < -tr.change < (y[0] - y[-1])


def test_linear_rise():
    rng = rng_for(4)
    t = np.arange(2000, dtype=float)
    tr = S.mann_kendall(t, 1.0 + 0.001 * t + 0.05 * rng.standard_normal(2000))
    assert tr.direction == 1 and tr.p_value < 1e-6
    assert tr.slope == pytest.approx(0.001, rel=0.02)
    span = tr.change / tr.slope
    assert tr.change_low <= 0.001 * span <= tr.change_high


def test_constant_curve_has_no_trend():
    t = np.arange(500, dtype=float)
    tr = S.mann_kendall(t, np.full(500, 0.7))
    assert tr.direction == 0 and tr.p_value == 1.0 and tr.change == 0.0
    assert S.mann_kendall(t, np.full(500, 0.7)).change_high == 0.0


def test_trend_with_uneven_steps_uses_the_step_axis():
    rng = rng_for(5)
    steps = np.cumsum(rng.integers(1, 50, size=3000)).astype(float)  # logged at irregular steps
    y = 5.0 - 0.0001 * steps + 0.02 * rng.standard_normal(3000)
    tr = S.mann_kendall(steps, y)
    assert tr.direction == -1
    assert tr.slope == pytest.approx(-0.0001, rel=0.03)  # per step, not per point


def test_trend_needs_four_points_and_an_advancing_axis():
    assert S.mann_kendall(np.arange(3.0), np.array([3.0, 2.0, 1.0])).n == 0
    assert S.mann_kendall(np.zeros(50), np.arange(50.0)).direction == 0


def test_ten_point_curves():
    t = np.arange(10, dtype=float)
    assert S.mann_kendall(t, 10.0 - t).direction == -1  # S = -45 of 45
    assert S.mann_kendall(t, np.exp(-t / 3)).direction == -1
    assert S.mann_kendall(t, t**2).direction == 1
    assert S.mann_kendall(t, np.array([1, 3, 2, 4, 3, 1, 2, 4, 1, 3.0])).direction == 0


def test_hamed_rao_inflates_variance_for_autocorrelated_noise():
    # n=200: 100 block medians of 2 points, still strongly autocorrelated (median inflation ~4.6).
    # (At n=2000 the medians of 20-point blocks of phi=0.9 noise have a lag-1 correlation of only
    # ~0.25, and the inflation is often 1.)
    rng = rng_for(6)
    t = np.arange(200, dtype=float)
    infl_ar = np.median([S.mann_kendall(t, ar1(rng, 200, 0.9)).variance_inflation for _ in range(20)])
    infl_iid = np.median([S.mann_kendall(t, rng.standard_normal(200)).variance_inflation for _ in range(20)])
    assert infl_ar > 2.0
    assert infl_iid < 1.2


# --------------------------------------------------------------------------------------------
# Flatness (equivalence) and stalls
# --------------------------------------------------------------------------------------------


def test_flat_noisy_curve_is_flat_with_a_generous_tolerance():
    rng = rng_for(7)
    t = np.arange(2000, dtype=float)
    y = 1.0 + 0.05 * rng.standard_normal(2000)
    f = S.flatness(t, y, tolerance=0.1)
    assert f.is_flat and -0.1 < f.change_low <= f.change_high < 0.1


def test_sloped_curve_is_not_flat():
    rng = rng_for(8)
    t = np.arange(2000, dtype=float)
    y = 1.0 - 0.0002 * t + 0.05 * rng.standard_normal(2000)  # falls by 0.4
    assert not S.flatness(t, y, tolerance=0.1).is_flat
    assert S.flatness(t, y, tolerance=1.0).is_flat  # ... but flat to within +-1.0


def test_flat_is_an_equivalence_not_the_absence_of_a_trend():
    rng = rng_for(9)
    t = np.arange(20000, dtype=float)
    y = 1.0 - 1e-6 * t + 0.01 * rng.standard_normal(len(t))  # falls by 0.02: significant, yet flat
    assert S.mann_kendall(t, y).direction == -1
    assert S.flatness(t, y, tolerance=0.1).is_flat
    short = 1.0 + 0.5 * rng.standard_normal(20)  # no trend shown, but nothing shown flat either
    assert S.mann_kendall(np.arange(20.0), short).direction == 0
    assert not S.flatness(np.arange(20.0), short, tolerance=0.1).is_flat


def test_flatness_sees_a_drop_at_the_start_of_the_window():
    # A window that falls steeply first and is flat after: the median pairwise slope is ~0, but
    # the curve is not flat to within 0.1 (it falls by 0.6). Regression for the Theil-Sen-only test.
    t = np.arange(1000, dtype=float)
    y = np.where(t < 125, 1.1 - 0.6 * t / 125, 0.5)
    assert abs(S.mann_kendall(t, y).change) < 0.1
    assert not S.flatness(t, y, tolerance=0.1).is_flat


def knee_curve(n: int, knee: float, sd: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Linear fall from 2.3 to 0.5 over the first `knee` share of the run, flat after."""
    t = np.arange(n, dtype=float)
    clean = np.where(t < knee * n, 2.3 - 1.8 * t / (knee * n), 0.5)
    return t, clean + sd * rng.standard_normal(n)


@pytest.mark.parametrize("n", [200, 2000, 20000])
@pytest.mark.parametrize("knee,expected", [(0.15, 0.2), (0.3, 0.3), (0.45, 0.5)])
def test_find_stall_starts_at_the_knee(n, knee, expected):
    # the stall is stated to the candidate grid (0.1, 0.2, ...): the first candidate at or after
    # the knee. Before the fix of `flatness` it came one step early (0.1 / 0.2 / 0.4), while the
    # curve still had to fall by 0.6 / 0.6 / 0.2 against a tolerance of 0.115.
    t, y = knee_curve(n, knee, 0.02, rng_for(10, n, knee))
    lv = S.curve_levels(t, y)
    st = S.find_stall(t, y, tolerance=0.05 * lv.start)
    assert st.start_fraction == pytest.approx(expected)
    assert st.level == pytest.approx(0.5, abs=0.02)
    assert st.start_x == pytest.approx(expected * n, rel=0.05)


def test_find_stall_exponential_knee_is_not_called_early():
    # 99.3% of the fall is done at 30% of the run; from 20% on 0.064 (< tolerance 0.115) remains
    t = np.arange(2000, dtype=float)
    y = 0.5 + 1.8 * np.exp(-t / (0.3 * 2000 / 5))
    st = S.find_stall(t, y, tolerance=0.05 * y[0])
    assert st.start_fraction == pytest.approx(0.2)


def test_find_stall_none_for_a_steadily_falling_curve():
    rng = rng_for(11)
    t = np.arange(2000, dtype=float)
    y = 2.3 - 0.8 * t / 2000 + 0.05 * rng.standard_normal(2000)
    assert S.find_stall(t, y, tolerance=0.05 * 2.3).start_fraction is None


# --------------------------------------------------------------------------------------------
# Levels and drops
# --------------------------------------------------------------------------------------------


def test_curve_levels_and_window_drop():
    t, y = exp_decay(1000, 0.2)
    lv = S.curve_levels(t, y)
    assert lv.start == pytest.approx(y[:20].mean(), rel=0.02)
    assert lv.end == pytest.approx(y[-50:].mean(), rel=0.02)
    assert lv.best == pytest.approx(y[-10:].mean(), rel=0.02) and lv.best_fraction == 1.0
    assert lv.noise < 1e-3 and lv.n_finite == 1000
    # window_drop reads each end as the median of a few blocks around it (~6% of the curve at the
    # ends, where the neighbourhood is one-sided), so on a straight line it is a little short
    line = 2.0 - t / 1000
    assert S.window_drop(t, line, 0.0, 1.0) == pytest.approx(1.0, rel=0.1)
    assert S.window_drop(t, line, 0.7, 1.0) == pytest.approx(0.3, rel=0.15)
    assert S.window_drop(t, line[::-1], 0.0, 1.0) == pytest.approx(-1.0, rel=0.1)  # rose: negative
    assert S.window_drop(t, y, 0.0, 1.0) > 0.8 * (y[0] - y[-1])


def test_robust_noise_estimates_white_noise_sd_and_ignores_trend():
    rng = rng_for(12)
    t = np.arange(20000, dtype=float)
    assert S.robust_noise(5.0 - 1e-4 * t + 0.2 * rng.standard_normal(len(t))) == pytest.approx(0.2, rel=0.05)
    assert S.robust_noise(np.array([1.0, 2.0])) == 0.0


# --------------------------------------------------------------------------------------------
# Oscillation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,period", [(400, 20), (2000, 50), (2000, 7), (20000, 500), (100_000, 1000)])
def test_detect_oscillation_finds_a_sine_and_its_period(n, period):
    rng = rng_for(13, n, period)
    t = np.arange(n)
    y = 1.0 + 0.2 * np.sin(2 * np.pi * t / period) + 0.1 * rng.standard_normal(n)
    osc = S.detect_oscillation(y)
    assert osc.detected and osc.p_value < 1e-6
    # in points of the curve given, also when it was block-median reduced (n > 4096)
    assert osc.period == pytest.approx(period, rel=0.05)
    assert osc.amplitude == pytest.approx(0.2, rel=0.15)


def test_detect_oscillation_on_a_sine_riding_a_decay():
    rng = rng_for(14)
    t = np.arange(3000, dtype=float)
    y = 0.5 + 1.5 * np.exp(-t / 1500) + 0.1 * np.sin(2 * np.pi * t / 60) + 0.05 * ar1(rng, 3000, 0.5)
    osc = S.detect_oscillation(y)
    assert osc.detected and osc.period == pytest.approx(60, rel=0.05)


@pytest.mark.parametrize("n,amp_low,amp_high", [(200, 0.17, 0.23), (201, 0.17, 0.30)])
def test_detect_oscillation_period_two_zigzag(n, amp_low, amp_high):
    # the learning-rate-too-high zig-zag. Even n: the zig-zag sits exactly on the Nyquist bin, whose
    # amplitude was once reported doubled (0.415 for 0.2). Odd n: it falls half a bin off the last
    # bin and the one-sided estimate reads ~1.27x high (0.254), a known scalloping effect.
    rng = rng_for(15, n)
    y = 1.0 + 0.2 * np.where(np.arange(n) % 2 == 0, 1.0, -1.0) + 0.1 * rng.standard_normal(n)
    osc = S.detect_oscillation(y)
    assert osc.detected and osc.phi == 0.0
    assert osc.period == pytest.approx(2.0, rel=0.01)
    assert amp_low <= osc.amplitude <= amp_high


def test_detect_oscillation_not_on_red_noise_or_degenerate_input():
    rng = rng_for(16)
    assert not S.detect_oscillation(ar1(rng, 2000, 0.99)).detected
    assert not S.detect_oscillation(np.full(500, 2.0)).detected
    assert not S.detect_oscillation(np.arange(10.0)).detected
    assert not S.detect_oscillation(np.full(100, np.nan)).detected


# --------------------------------------------------------------------------------------------
# Divergence
# --------------------------------------------------------------------------------------------


def test_divergence_on_a_curve_that_falls_then_climbs_back():
    rng = rng_for(17)
    n = 2000
    t = np.arange(n, dtype=float)
    clean = np.where(t < 800, 2.3 - 1.8 * t / 800, 0.5 + 1.5 * (t - 800) / 1200)  # back to 2.0
    div = S.detect_divergence(t, clean + 0.1 * ar1(rng, n, 0.5))
    assert div.detected
    assert div.regained == pytest.approx(1.5 / 1.8, abs=0.1)
    assert div.onset_x == pytest.approx(800, abs=100)
    assert div.trend_after_best.direction == 1
    assert div.growth < S.EXPLOSION_GROWTH


def test_divergence_explosion():
    t = np.arange(500, dtype=float)
    y = np.where(t < 300, 1.0 - 0.5 * t / 300, 0.5 * np.exp((t - 300) / 40))
    div = S.detect_divergence(t, y)
    assert div.detected and div.growth > S.EXPLOSION_GROWTH


@pytest.mark.parametrize("n", [200, 2000, 100_000])
def test_no_divergence_on_a_converged_noisy_curve(n):
    t, y = healthy_loss(rng_for(18, n), n, 0.9)
    div = S.detect_divergence(t, y)
    assert not div.detected
    assert div.regained < 0.2


def test_small_rebound_is_not_divergence():
    # rises again after its best point, significantly, but gives back only ~20% of the progress
    t = np.arange(1000, dtype=float)
    y = np.where(t < 600, 2.3 - 1.8 * t / 600, 0.5 + 0.35 * (t - 600) / 400)
    div = S.detect_divergence(t, y)
    assert div.trend_after_best.direction == 1 and not div.detected
    assert div.regained == pytest.approx(0.35 / 1.8, abs=0.05)


# --------------------------------------------------------------------------------------------
# Overfitting (Prechelt) and multiple testing
# --------------------------------------------------------------------------------------------


def test_prechelt_generalization_loss_by_hand():
    gl, best = S.generalization_loss(np.array([1.0, 0.8, 0.5, 0.6, 0.55]))
    assert best == 2 and gl == pytest.approx(10.0)  # 100 * (0.55 / 0.5 - 1)
    gl, best = S.generalization_loss(np.array([1.0, 0.5, np.nan, 0.6, 0.7]))
    assert best == 1 and gl == pytest.approx(40.0)
    assert S.generalization_loss(np.array([3.0, 2.0, 1.0])) == (0.0, 2)
    assert S.generalization_loss(np.full(3, np.nan)) == (0.0, 0)


def test_prechelt_training_progress_and_up_by_hand():
    # P_5 = 1000 * (mean / min - 1) = 1000 * (0.85 / 0.75 - 1)
    assert S.training_progress(np.array([2.0, 1.0, 0.9, 0.8, 0.8, 0.75]), k=5) == pytest.approx(
        1000 * (0.85 / 0.75 - 1)
    )
    assert S.training_progress(np.full(5, 0.3)) == 0.0
    assert S.consecutive_rises(np.array([1.0, 0.5, 0.6, 0.7, 0.8])) == 3
    assert S.consecutive_rises(np.array([1.0, 0.5, 0.6, 0.55])) == 0
    assert S.consecutive_rises(np.array([0.5, 0.6, np.nan, 0.7])) == 2


def test_detect_overfitting_on_falling_train_and_u_shaped_val():
    rng = rng_for(19)
    tx = np.arange(2000, dtype=float)
    train = 0.2 + 2.0 * np.exp(-tx / 300) + 0.05 * ar1(rng, 2000, 0.5)
    vx = np.arange(0, 2000, 50, dtype=float)
    val = 0.6 + 1.5 * np.exp(-vx / 150) + 0.0003 * vx + 0.01 * rng.standard_normal(len(vx))
    ov = S.detect_overfitting(tx, train, vx, val)
    # best near t = 150 * ln(1.5 / (150 * 0.0003)) = 526, i.e. the 11th evaluation
    assert abs(ov.best_index - 10.5) <= 2
    assert ov.gl > 10.0  # ~50% above the best
    assert ov.val_trend_after_best.direction == 1
    assert ov.gap_trend.direction == 1
    assert ov.train_trend_after_best.direction == -1
    assert ov.evals_after_best == len(vx) - 1 - ov.best_index
    assert ov.pq > 0


def test_no_overfitting_when_val_tracks_train():
    rng = rng_for(20)
    tx = np.arange(2000, dtype=float)
    train = 0.2 + 2.0 * np.exp(-tx / 300) + 0.05 * ar1(rng, 2000, 0.5)
    vx = np.arange(0, 2000, 50, dtype=float)
    val = 0.3 + 2.0 * np.exp(-vx / 300) + 0.003 * rng.standard_normal(len(vx))
    ov = S.detect_overfitting(tx, train, vx, val)
    assert ov.gl < 5.0  # noise of 1% of the level: GL is a few % at most
    assert ov.best_index >= 30
    assert ov.val_trend_after_best.direction != 1
    assert ov.gap_trend.direction != 1


def test_detect_overfitting_needs_four_validation_points():
    t = np.arange(100, dtype=float)
    assert S.detect_overfitting(t, 1 / (1 + t), t[:3], np.array([1.0, 0.5, 0.6])) is None
    assert S.detect_overfitting(t, 1 / (1 + t), t[:5], np.full(5, np.nan)) is None


def test_benjamini_hochberg_by_hand():
    # sorted: 0.001 0.02 0.024 0.03 0.5 0.9 against q*k/m = .0083 .0167 .025 .0333 .0417 .05:
    # 0.02 fails its own threshold, but 0.03 passes the fourth, so the first four are discoveries
    p = [0.03, 0.9, 0.001, 0.5, 0.024, 0.02]
    assert S.benjamini_hochberg(p, q=0.05) == [True, False, True, False, True, True]
    assert S.benjamini_hochberg(p, q=0.01) == [False, False, True, False, False, False]
    assert S.benjamini_hochberg([0.2, 0.6], q=0.05) == [False, False]
    assert S.benjamini_hochberg([0.04, 0.01], q=0.05) == [True, True]
    assert S.benjamini_hochberg([]) == []


# --------------------------------------------------------------------------------------------
# Robustness: tiny, huge, empty, constant, uneven
# --------------------------------------------------------------------------------------------


def run_everything(x: np.ndarray, y: np.ndarray) -> dict:
    lv = S.curve_levels(x, y)
    tol = 0.05 * abs(lv.start) if lv else 0.1
    vx, vy = x[:: max(1, len(x) // 20)], y[:: max(1, len(y) // 20)]
    return {
        "bm": S.block_medians(x, y),
        "mk": S.mann_kendall(x, y),
        "flat": S.flatness(x, y, tol),
        "stall": S.find_stall(x, y, tol),
        "levels": lv,
        "drop": S.window_drop(x, y, 0.0, 1.0),
        "osc": S.detect_oscillation(y),
        "div": S.detect_divergence(x, y),
        "over": S.detect_overfitting(x, y, vx, vy * 1.1),
        "nf": S.find_nonfinite(y),
        "noise": S.robust_noise(y),
    }


def test_ten_points_everything_runs():
    t, y = exp_decay(10, 0.3)
    r = run_everything(t, y)
    assert r["mk"].direction == -1
    assert not r["osc"].detected and not r["div"].detected
    assert r["levels"].n_finite == 10


def test_hundred_thousand_points():
    rng = rng_for(21)
    t, y = healthy_loss(rng, 100_000, 0.9)
    r = run_everything(t, y)
    assert r["mk"].direction == -1 and r["mk"].n == 100
    assert len(r["bm"][1]) == 100
    assert r["stall"].start_fraction is not None and r["stall"].start_fraction >= 0.3
    assert not r["div"].detected
    assert r["nf"].first_index is None


def test_all_nan():
    t = np.arange(500, dtype=float)
    r = run_everything(t, np.full(500, np.nan))
    assert len(r["bm"][1]) == 0
    assert r["mk"].direction == 0 and r["mk"].n == 0
    assert not r["flat"].is_flat and r["stall"].start_fraction is None
    assert r["levels"] is None and r["drop"] == 0.0
    assert not r["osc"].detected and not r["div"].detected and r["over"] is None
    assert r["nf"] == S.NonFinite(0, 500, "nan")


def test_constant():
    t = np.arange(1000, dtype=float)
    r = run_everything(t, np.full(1000, 0.69))
    assert r["mk"].direction == 0 and r["mk"].change == 0.0
    assert r["flat"].is_flat and r["stall"].start_fraction == pytest.approx(0.1)
    assert r["drop"] == 0.0 and r["noise"] == 0.0
    assert not r["osc"].detected and not r["div"].detected
    assert r["over"].gl == 0.0


def test_uneven_steps_and_nan_holes():
    rng = rng_for(22)
    steps = np.cumsum(rng.integers(1, 100, size=5000)).astype(float)
    y = 0.3 + 2.0 * np.exp(-steps / (0.15 * steps[-1])) + 0.1 * ar1(rng, 5000, 0.5)
    y[rng.choice(5000, 200, replace=False)] = np.nan
    y[1234] = S.MLFLOW_INF
    r = run_everything(steps, y)
    assert r["mk"].direction == -1
    assert r["nf"].count == 201
    assert not r["div"].detected
    assert r["stall"].start_fraction is not None and steps[0] <= r["stall"].start_x <= steps[-1]


# --------------------------------------------------------------------------------------------
# False-positive rates on null / healthy curves (fixed seeds; bounds set from measurements)
# --------------------------------------------------------------------------------------------


def mk_rejection_rate(phi: float, n: int, reps: int) -> float:
    rng = rng_for(100, phi, n)
    t = np.arange(n, dtype=float)
    return float(np.mean([S.mann_kendall(t, ar1(rng, n, phi)).p_value < 0.05 for _ in range(reps)]))


# rejection rate at alpha = 0.05, measured with exactly this simulation (reps=400); in brackets
# the rate over 1,000 replicates from another seed, for the long-run value:
#   iid      n=200: 0.050 [0.048]   n=2000: 0.030 [0.034]
#   phi=0.5  n=200: 0.1025 [0.083]  n=2000: 0.045 [0.045]
#   phi=0.9  n=200: 0.145 [0.151]   n=2000: 0.050 [0.073]
#   phi=0.98                        n=2000: 0.1325 [0.130]
# Without the Hamed-Rao correction (same block medians, same seeds): iid 0.055 / 0.035,
# phi=0.5 0.175 / 0.050, phi=0.9 0.515 / 0.0975, phi=0.98 n=2000 0.3225 -- the phi=0.5 n=200,
# phi=0.9 n=200 and phi=0.98 n=2000 cases are the ones that catch losing the correction (at
# n=2000 the 20-point block medians have already removed most of the phi=0.9 autocorrelation).
# The 0.13-0.15 at phi=0.9 n=200 and phi=0.98 n=2000 is a known residual excess of Hamed-Rao on
# ~100 strongly autocorrelated points; the bounds pin it from above, they do not endorse it.
@pytest.mark.parametrize(
    "phi,n,bound",
    [
        (0.0, 200, 0.09),
        (0.0, 2000, 0.09),
        (0.5, 200, 0.15),
        (0.5, 2000, 0.09),
        (0.9, 200, 0.22),
        (0.9, 2000, 0.12),
        (0.98, 2000, 0.20),
    ],
)
def test_mann_kendall_false_positive_rate(phi, n, bound):
    assert mk_rejection_rate(phi, n, reps=400) <= bound


def oscillation_rate(phi: float, n: int, reps: int) -> float:
    rng = rng_for(200, phi, n)
    return float(np.mean([S.detect_oscillation(ar1(rng, n, phi)).detected for _ in range(reps)]))


# detect_oscillation (alpha = 0.01, Bonferroni over frequencies) on pure red noise, measured
# with exactly this simulation [1,000 other-seed replicates]:
#   iid      n=200: 0.0125 [0.007]   n=2000: 0.0100 [0.005]
#   phi=0.9  n=200: 0.0125 [0.015]   n=2000: 0.0125 [0.011]
#   phi=0.99 n=200: 0.0075 [0.012]   n=2000: 0.0075 [0.009]
#   phi=0.99 n=20000 (block-median reduced to 4096 points), reps=200: 0.025 [0.033-0.064 over
#   n=8k-50k, 500 replicates each]
# The long curves run above nominal: a block-median series is not an AR(1) any more.
@pytest.mark.parametrize(
    "phi,n,reps,bound",
    [
        (0.0, 200, 400, 0.03),
        (0.0, 2000, 400, 0.03),
        (0.9, 200, 400, 0.05),
        (0.9, 2000, 400, 0.05),
        (0.99, 200, 400, 0.05),
        (0.99, 2000, 400, 0.05),
        (0.99, 20000, 200, 0.10),
    ],
)
def test_oscillation_false_positive_rate_on_red_noise(phi, n, reps, bound):
    assert oscillation_rate(phi, n, reps) <= bound


def healthy_rates(n: int, phi: float, reps: int) -> tuple[float, float]:
    """Share of healthy decaying curves called diverging, and called a plateau the way the
    Plateau rule reads `find_stall` (flat from the first half on, < 30% below the start)."""
    rng = rng_for(300, phi, n)
    div = plateau = 0
    for _ in range(reps):
        t, y = healthy_loss(rng, n, phi)
        div += S.detect_divergence(t, y).detected
        lv = S.curve_levels(t, y)
        st = S.find_stall(t, y, tolerance=0.05 * abs(lv.start))
        if st.start_fraction is not None and st.start_fraction <= 0.5 and (lv.start - st.level) / lv.start < 0.30:
            plateau += 1
    return div / reps, plateau / reps


# measured (reps=100 per case): divergence 0.00 and plateau 0.00 in all nine cases; also 0.000 of
# 300 in each of 48 other healthy configurations (additive and multiplicative noise, n up to 20k).
@pytest.mark.parametrize("n", [200, 2000, 20000])
@pytest.mark.parametrize("phi", [0.5, 0.9, 0.99])
def test_healthy_decaying_curves_neither_diverge_nor_plateau(n, phi):
    div, plateau = healthy_rates(n, phi, reps=100)
    assert div == 0.0
    assert plateau == 0.0


def slow_learner_rates(n: int, phi: float, reps: int) -> tuple[float, float]:
    """A slow but steady learner: falls linearly by 25% (2.3 -> 1.725) with AR(1) noise of sd 0.15.
    Harder than the exponential decay: the total gain is only ~4 noise sds."""
    rng = rng_for(400, phi, n)
    t = np.arange(n, dtype=float)
    clean = 2.3 - 0.575 * t / n
    div = plateau = 0
    for _ in range(reps):
        y = clean + ar1(rng, n, phi, 0.15)
        div += S.detect_divergence(t, y).detected
        lv = S.curve_levels(t, y)
        st = S.find_stall(t, y, tolerance=0.05 * abs(lv.start))
        plateau += st.start_fraction is not None and st.start_fraction <= 0.5
    return div / reps, plateau / reps


# measured with exactly this simulation (reps=200): divergence / early stall
#   n=200:  phi=0.5 0.005 / 0.000   phi=0.9 0.060 / 0.005   phi=0.99 0.010 / 0.020
#   n=2000: phi=0.5 0.000 / 0.000   phi=0.9 0.005 / 0.000   phi=0.99 0.050 / 0.005
# Not zero: a noisy slow learner whose noise wanders by half its gain can look like a rebound.
@pytest.mark.parametrize(
    "n,phi,div_bound,stall_bound",
    [
        (200, 0.5, 0.03, 0.03),
        (200, 0.9, 0.12, 0.03),
        (200, 0.99, 0.03, 0.10),
        (2000, 0.5, 0.03, 0.03),
        (2000, 0.9, 0.05, 0.03),
        (2000, 0.99, 0.10, 0.03),
    ],
)
def test_slow_learners_rarely_diverge_or_stall(n, phi, div_bound, stall_bound):
    div, stall = slow_learner_rates(n, phi, reps=200)
    assert div <= div_bound
    assert stall <= stall_bound


def flat_divergence_rate(n: int, phi: float, reps: int) -> float:
    rng = rng_for(500, phi, n)
    t = np.arange(n, dtype=float)
    return float(np.mean([S.detect_divergence(t, 1.0 + ar1(rng, n, phi, 0.1)).detected for _ in range(reps)]))


# A run that never learns (stationary noise around its start), measured with exactly this
# simulation (reps=300), before -> after the "no real progress" branch of detect_divergence:
#   iid      n=200: 0.023          n=2000: 0.000
#   phi=0.5  n=200: 0.113 -> 0.057 n=2000: 0.053 -> 0.017
#   phi=0.9  n=200: 0.293 -> 0.267 n=2000: 0.103 -> 0.060
#   phi=0.99 n=200: 0.507 -> 0.493 n=2000: 0.263 -> 0.230
# With persistent noise the start level (a few points) can sit far above the deepest dip, so the
# curve looks like it gained and lost again; at phi >= 0.9 and a few hundred points that is not
# separable from a real slow divergence by these tests. Only the iid case is acceptable today.
@pytest.mark.parametrize("n,bound", [(200, 0.10), (2000, 0.03)])
def test_divergence_false_positive_rate_on_flat_white_noise(n, bound):
    assert flat_divergence_rate(n, 0.0, reps=300) <= bound


@pytest.mark.xfail(reason="known weakness: divergence fires on 10-29% of flat AR(1) phi=0.9 noise", strict=False)
@pytest.mark.parametrize("n,phi", [(200, 0.9), (2000, 0.9)])
def test_divergence_false_positive_rate_on_flat_red_noise(n, phi):
    assert flat_divergence_rate(n, phi, reps=300) <= 0.05


def test_mann_kendall_s_equals_scipy_kendalltau():
    """S counted over block pairs is exactly what scipy's tau-b gives times its normaliser,
    ties in y included (the statistic the issue names; counting it directly is cheaper)."""
    import math

    import scipy.stats as sps

    from mlflow_nnaudit.auditor import stats

    rng = np.random.default_rng(7)
    for trial in range(60):
        n = int(rng.integers(5, 100))
        x = np.sort(rng.choice(np.arange(1000.0), size=n, replace=False))
        y = rng.normal(size=n) + 0.02 * trial * x / 1000
        if trial % 3 == 0:
            y = np.round(y, 1)  # ties
        t = stats.mann_kendall(x, y, max_blocks=100)
        tau_b = sps.kendalltau(x, y).statistic
        n0 = n * (n - 1) / 2
        _, counts = np.unique(y, return_counts=True)
        n_ties = float(np.sum(counts * (counts - 1) / 2))
        s_scipy = tau_b * math.sqrt(n0 * (n0 - n_ties))
        assert t.tau * n0 == pytest.approx(s_scipy, abs=1e-6)


def test_row_medians_and_ranks_match_numpy_and_scipy():
    import scipy.stats as sps

    from mlflow_nnaudit.auditor import stats

    rng = np.random.default_rng(3)
    for q in (1, 2, 3, 4, 7, 8):
        a = rng.normal(size=(5, q))
        np.testing.assert_array_equal(stats._row_medians(a), np.median(a, axis=1))
        s = np.sort(a, axis=1)
        np.testing.assert_array_equal(stats._row_medians(s, rows_sorted=True), np.median(s, axis=1))
    for v in (rng.normal(size=50), np.round(rng.normal(size=50), 1)):
        np.testing.assert_array_equal(stats._ranks(v), sps.rankdata(v))


# --- early blow-up and stuck loss (issue 11: causal ordering for a too-high learning rate) ---------------
LN4 = math.log(4)


def test_blowup_in_the_first_epoch_is_measured_from_the_pre_explosion_start():
    # per-epoch curve whose first point already averages the explosion (SGD lr 10), then flat at ln 4
    y = np.array([3e13, 5.2, 1.39] + [LN4] * 17)
    b = S.detect_blowup(np.arange(20.0), y, expected_start=1.40, classification=True)
    assert b.detected and b.index == 0 and b.start == pytest.approx(1.40)
    assert b.growth > 1e12 and not b.nonfinite
    # the improvement measured from the start, not from the peak: none
    assert (b.start - b.end) / b.start < 0.02


def test_blowup_by_growth_and_by_nonfinite():
    b = S.detect_blowup(np.arange(20.0), np.array([1.37, 4.0, 126.0] + [120.0] * 17))
    assert b.detected and b.index == 2 and b.x == 2.0 and b.growth == pytest.approx(126 / 1.37)
    nf = S.detect_blowup(np.arange(10.0), np.array([1.0, 2.0, np.nan] + [np.nan] * 7))
    assert nf.detected and nf.nonfinite and nf.index == 2 and math.isinf(nf.growth)


def test_no_blowup_on_healthy_noisy_or_late_curves():
    rng = np.random.default_rng(SEED)
    x = np.arange(200.0)
    healthy = 2.0 * np.exp(-x / 40) + 0.1 + 0.05 * rng.standard_normal(200)
    assert not S.detect_blowup(x, np.abs(healthy), expected_start=2.0, classification=True).detected
    warmup_bump = np.r_[np.linspace(1.4, 3.5, 10), np.linspace(3.5, 0.3, 190)]  # 2.5x: a bump, not an explosion
    assert not S.detect_blowup(x, warmup_bump).detected
    late = np.r_[np.linspace(1.4, 0.3, 150), np.geomspace(0.3, 1e5, 50)]  # a divergence, not an early blow-up
    assert not S.detect_blowup(x, late).detected


def test_blowup_absolute_level_only_for_classification_and_expected_start_only_on_its_scale():
    x = np.arange(20.0)
    mse = np.geomspace(5e4, 10.0, 20)  # a regression on raw targets starts in the thousands: no explosion
    assert not S.detect_blowup(x, mse).detected
    summed = np.linspace(140.0, 60.0, 20)  # loss logged as a sum over ~100 batches, first-step loss 1.4
    assert not S.detect_blowup(x, summed, expected_start=1.4, classification=True).detected


def test_stuck_loss_constant_and_at_chance():
    s = S.stuck_loss(np.array([1.2, 1.1] + [math.log(3)] * 10))
    assert s.constant and s.chance_k == 3 and s.stuck
    bert = S.stuck_loss(np.array([0.71, 0.70, 0.688, 0.685, 0.686, 0.684, 0.685, 0.687]), n_classes=2)
    assert bert.chance_k == 2 and bert.known_classes and not bert.constant
    # a run that learned: far below chance; a noisy tail is not constant
    assert not S.stuck_loss(np.linspace(1.4, 0.2, 30), n_classes=4).stuck
    rng = np.random.default_rng(SEED)
    assert not S.stuck_loss(0.5 + 0.05 * rng.standard_normal(30)).stuck
    # without the class count only a tight band around ln k counts: 0.72 is not ln 2 (0.693)
    assert S.stuck_loss(np.full(10, 0.72) + np.linspace(0, 0.01, 10)).chance_k is None
    assert S.stuck_loss(np.array([1.0, 2.0])) is None


def test_a_high_first_loss_the_run_trains_away_from_is_not_a_blowup():
    """Raw-scale inputs: the very first step's loss is 14x ln 4, then the run trains to half of
    ln 4. Measured from ln C the first point would read as an explosion at step 0; it is a high
    first loss (initial_loss_mismatch's business), not a blow-up: growth is measured from the
    first point. A later explosion, 25x that point, still is one."""
    x = np.arange(378.0)
    y = 0.55 + 19.2 * np.exp(-x / 8)
    assert not S.detect_blowup(x, y, expected_start=LN4, classification=True).detected
    later = y.copy()
    later[20:25] = 500.0  # 25x the first point
    assert S.detect_blowup(x, later, expected_start=LN4, classification=True).detected


def test_a_blow_up_of_single_samples_losses_needs_a_second_point_over_the_line():
    # batches of one sample (`isolated_ok`): one rare sample's loss, the next two points back down, is no explosion
    x = np.arange(300.0)
    y = np.r_[1.0, np.full(299, 0.5)]
    y[[15, 140]] = [12.0, 11.0]
    assert not S.detect_blowup(x, y, isolated_ok=True).detected
    assert S.detect_blowup(x, y).detected  # (a batch's mean: one point is the explosion)
    # found by review: a loss that jumps at step 1 and stays high is detected, from the raw first loss
    jumped = np.r_[1.1, 40.0 + np.sin(np.arange(299))]
    b = S.detect_blowup(x, jumped, expected_start=1.1, isolated_ok=True)
    assert b.detected and b.index == 1 and b.start == pytest.approx(1.1) and b.peak >= 40
    # a wrecked classifier's samples cost ~0 (its favoured class) or far more: two of three high is enough
    wrecked = np.r_[1.1, np.tile([0.0, 60.0, 55.0], 100)[:299]]
    assert S.detect_blowup(x, wrecked, expected_start=1.1, isolated_ok=True).detected
    # two rare costly samples in a row are not most of five (found by review: 2 of 3 fired on 37% of such streams)
    pair = np.r_[1.0, np.full(299, 0.5)]
    pair[[40, 41]] = 11.0
    assert not S.detect_blowup(x, pair, isolated_ok=True).detected
    # the last points of a short curve, with no five left to read, are read as they are
    assert S.detect_blowup(np.arange(3.0), np.array([1.0, 1.0, 50.0]), isolated_ok=True).detected
    # a NaN right after a spike counts with it
    nan_after = np.r_[1.0, np.full(299, 0.5)]
    nan_after[20:22] = [30.0, np.nan]
    assert S.detect_blowup(x, nan_after, isolated_ok=True).detected
