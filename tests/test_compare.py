"""lib.compare: the statistics the recipe notebook states."""
import math

import pytest

import pandas as pd

from lib.compare import interval, paired, pct, runs_frame, t975, variant_table


def test_t_quantiles_match_students_t():
    assert t975(1) == 12.706 and t975(7) == 2.365 and t975(30) == 2.042
    assert t975(40) == pytest.approx(2.0211, abs=2e-4) and t975(120) == pytest.approx(1.9799, abs=2e-4)


def test_interval_of_a_mean():
    mean, half = interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert math.isnan(interval([5.0])[1])


def rows(values):
    return [{"variant": v, "seed": s, "min_last5": x, "status": "complete"}
            for v, per_seed in values.items() for s, x in per_seed.items()]


def test_paired_differences_use_the_shared_seeds_only():
    a = pd.Series({1: 99.4, 2: 99.3, 3: 99.5, 4: math.nan})
    b = {1: 99.5, 2: 99.5, 4: 99.9, 5: 99.0}  # a dict as the stop rule passes, a Series as the tables
    n, mean, low, high = paired(a, b)
    assert n == 2 and mean == pytest.approx(0.15) and low < mean < high
    assert paired(b, a) == pytest.approx((2, -mean, -high, -low))
    assert paired(a, pd.Series({1: 99.0})) is None and paired({}, {}) is None
    assert (pct(99.4567), pct(0.0512, 3), pct(math.nan)) == ("99.46", "0.051", "–")


def test_paired_difference_uses_only_common_seeds_and_says_which_way():
    df = runs_frame(rows({"base": {1: 99.40, 2: 99.50, 3: 99.45},
                          "up": {1: 99.50, 2: 99.61, 3: 99.54, 4: 90.0},
                          "same": {1: 99.45, 2: 99.45}}) + [
        {"variant": "ghost", "seed": 1, "status": "failed"}], ["base", "up", "same", "unrun"])
    assert list(df.variant.cat.categories) == ["base", "up", "same"]  # only variants with a run
    t = variant_table(df, "base")
    assert t.loc["up", "paired_seeds"] == 3 and t.loc["up", "runs"] == 4
    assert t.loc["up", "diff"] == pytest.approx((0.10 + 0.11 + 0.09) / 3)
    assert t.loc["up", "verdict"] == "better" and t.loc["up", "diff_low"] > 0
    assert t.loc["same", "verdict"] == "within the noise"  # +0.05 and -0.05
    assert t.loc["base", "verdict"] == "baseline" and t.loc["base", "paired_seeds"] == 0
    assert t.loc["up", "worst"] == 90.0
