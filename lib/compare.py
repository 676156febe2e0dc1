"""A study's results as evidence: per variant its runs, mean, sd, worst, a 95 % interval of the
mean, and its difference to the baseline paired on the same seeds, with its own interval.

Why paired: with ~50 test errors a run, most of the seed-to-seed spread is the test set's own
sampling noise, and much of it is shared by two variants trained on the same seed (the same
initialisation draw, batch order and augmentation draws). The difference per seed cancels what
is shared; its mean and t-interval say whether a variant beats the baseline by more than noise.
"""
import math
import statistics

import pandas as pd

# two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (then the normal's)
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df):
    """Beyond the table, the Cornish-Fisher expansion around the normal's 1.960 (error < 1e-4)."""
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def interval(values):
    """(mean, half-width of its 95 % t-interval); the half-width is NaN below two values."""
    n = len(values)
    mean = statistics.mean(values)
    if n < 2:
        return mean, math.nan
    return mean, t975(n - 1) * statistics.stdev(values) / math.sqrt(n)


def paired(a, b):
    """b minus a, paired on the seeds both have ({seed: value} each, a dict or a Series; NaN
    left out): (seeds, mean, low, high) of its 95 % t-interval; None below two seeds."""
    common = sorted(s for s in set(a.keys()) & set(b.keys()) if not (pd.isna(a[s]) or pd.isna(b[s])))
    if len(common) < 2:
        return None
    mean, half = interval([b[s] - a[s] for s in common])
    return len(common), mean, mean - half, mean + half


def pct(x, places=2):
    """A percentage (or points) as a table shows it: `places` decimals, "–" for none."""
    return "–" if pd.isna(x) else f"{x:.{places}f}"


def verdict(low, high):
    """What a paired interval of a difference says."""
    if math.isnan(low):
        return "too few seeds"
    return "better" if low > 0 else "worse" if high < 0 else "within the noise"


def runs_frame(rows, variants=None):
    """The complete runs as a DataFrame (variant, seed, min_last5, ...), in study order."""
    df = pd.DataFrame([r for r in rows if r["status"] == "complete"])
    if variants is not None and len(df):
        df = df[df.variant.isin(variants)]
        present = set(df.variant)  # in study order, and only those with a run (figure rows)
        df["variant"] = pd.Categorical(df.variant, categories=[v for v in variants if v in present],
                                       ordered=True)
    return df.sort_values(["variant", "seed"]) if len(df) else df


def variant_table(df, baseline, value="min_last5"):
    """One row per variant: runs, mean, sd, worst, 95 % interval of the mean, and the mean
    difference to `baseline` paired on the seeds both have (`paired`), with its interval and verdict."""
    base = df[df.variant == baseline].set_index("seed")[value]
    rows = []
    for variant, g in df.groupby("variant", observed=True):
        v = g[value].tolist()
        mean, half = interval(v)
        n, diff, low, high = (variant != baseline and paired(base, g.set_index("seed")[value])) \
            or (0, math.nan, math.nan, math.nan)
        rows.append({
            "variant": variant, "runs": len(v), "mean": mean,
            "sd": statistics.stdev(v) if len(v) > 1 else math.nan, "worst": min(v),
            "ci_low": mean - half, "ci_high": mean + half,
            "paired_seeds": n, "diff": diff, "diff_low": low, "diff_high": high,
            "verdict": "baseline" if variant == baseline else verdict(low, high),
        })
    return pd.DataFrame(rows).set_index("variant")


def spread(table):
    """A table's mean and sd (3 decimals), worst (2) and 95 % interval of the mean, as shown."""
    return {"mean %": table["mean"].map(lambda x: pct(x, 3)), "sd": table.sd.map(lambda x: pct(x, 3)),
            "worst %": table.worst.map(pct),
            "95 % CI of the mean": [f"{pct(lo)} – {pct(hi)}" for lo, hi in zip(table.ci_low, table.ci_high)]}


def shown(table):
    """The variant table as a reader sees it: `spread`, then the paired difference to the baseline."""
    d = lambda x: "–" if math.isnan(x) else f"{x:+.3f}"
    return pd.DataFrame({
        "runs": table.runs, **spread(table),
        "vs baseline, paired": [f"{d(x)} ({n} seeds)" if n else "–"
                                for x, n in zip(table["diff"], table.paired_seeds)],
        "95 % CI of the difference": [f"{d(lo)} … {d(hi)}" for lo, hi in zip(table.diff_low, table.diff_high)],
        "verdict": table.verdict,
    }, index=table.index)


def size_table(df, line, value="min_last5"):
    """One row per variant of a frontier study, smallest first: its parameters and MACs per
    image, runs, how many hold `line` in each of the last 5 epochs, and `variant_table`'s
    mean, sd, worst and 95 % interval of the mean."""
    stats = variant_table(df, baseline=None, value=value)[["runs", "mean", "sd", "worst", "ci_low", "ci_high"]]
    sizes = df.groupby("variant", observed=True).agg(model=("model", "first"), params=("n_params", "first"),
                                                     macs=("macs", "first"),
                                                     held=(value, lambda v: int((v >= line).sum())))
    return sizes.join(stats).sort_values("params")
