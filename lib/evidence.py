"""What the study notebooks show, computed: a study's runs of today's code, the stale and the
missing ones, where they ran, paired comparisons, per-size tables and the Analysis sentences.

Where there is nothing to show, a function returns a `Note` saying why; a notebook shows it
as a line of text where the table would be.
"""
from dataclasses import dataclass

import pandas as pd

from lib import compare
from lib.paths import shown, study_names, study_path
from lib.study import Study, key, load, needed, of_today, read_results, stopped
from lib.targets import LINE, MEAN_LINE


class Note(str):
    """A sentence shown where a table would be: why there is none."""

    def __repr__(self):
        return str(self)


def lines(items):
    """Analysis sentences as one Note, a line each."""
    return Note("\n".join(f"- {item}" for item in items))


# --- a study's runs -------------------------------------------------------------------------
def current_runs(study, variant):
    """A study's complete runs of `variant` with today's code and parameters: {seed: row}."""
    return {r["seed"]: r for r in of_today(study, read_results(study.results).values())
            if r["variant"] == variant and r["status"] == "complete"}


@dataclass
class Evidence:
    """A study's record as evidence (`of`)."""
    study: Study
    rows: list  # every recorded row
    df: pd.DataFrame  # the complete runs of today's code (`compare.runs_frame`)
    stale: pd.DataFrame  # rows of a variant whose code or parameters changed since they ran
    failed: list  # failed rows of today's code
    table: pd.DataFrame  # `compare.variant_table`; None without a run
    stopped: dict  # {variant: why} ([stop_early])
    missing: dict  # {variant: seeds still to run}

    @property
    def nothing(self):
        return Note(f"Nothing to show: no complete run of today's code in {shown(self.study.results)} "
                    f"yet (make study STUDY={self.study.name}).")

    def recorded(self):
        return (f"{len(self.df)} complete runs of today's code, of {len(self.study.grid())} in the grid "
                f"({len(self.rows) - len(self.df)} other rows recorded: stale, failed or of other parameters)")

    def counts(self):
        return Note(f"{len(self.df)} complete runs of today's code, of {len(self.study.grid())} "
                    f"({len(self.failed)} failed, {sum(self.missing.values())} not run yet, "
                    f"{len(self.stopped)} variant(s) stopped early); {len(self.stale)} stale runs are "
                    "left out (below).")

    def shown(self):
        return self.nothing if self.table is None else compare.shown(self.table)

    def per_seed(self):
        """Every run, seed by seed: the worst of its last 5 epochs (–: not run, or not needed)."""
        if self.table is None:
            return self.nothing
        return self.df.pivot_table(index="variant", columns="seed", values="min_last5",
                                   observed=True).map(compare.pct)

    def by_seed(self, variant):
        """A variant's worst last-5 epoch per seed (runs of today's code)."""
        return self.df[self.df.variant == variant].set_index("seed").min_last5

    def stale_runs(self):
        if not len(self.stale):
            return Note("No stale runs.")
        return self.stale[["variant", "seed", "min_last5", "git_commit", "device", "cpu_threads"]].assign(
            git_commit=lambda d: d.git_commit.str[:10]).set_index(["variant", "seed"])


def of(name):
    """The `Evidence` of the study `name` (a name in studies/ or a .toml path)."""
    study = load(name)
    rows = list(read_results(study.results).values())
    fresh = of_today(study, rows)
    stale = [r for r in rows if r["variant"] in study.variants and r not in fresh]
    df = compare.runs_frame(fresh, study.variants)
    table = compare.variant_table(df, study.baseline) if len(df) else None
    counted = needed(study, {key(r): r for r in fresh})
    runs = table.runs if table is not None else {}
    missing = {v: sum(k[0] == v for k in counted) - int(runs.get(v, 0)) for v in study.variants}
    return Evidence(study, rows, df, compare.runs_frame(stale),
                    [r for r in fresh if r["status"] == "failed"], table,
                    stopped(study, {key(r): r for r in rows}), missing)


def optional(name, what):
    """`of(name)` for a study a notebook may be given (`what`, its parameter), or a Note:
    not asked for, not written yet, or no run of today's code."""
    if not name:
        return Note(f"Not asked for: {what} is empty.")
    if not study_path(name).exists():
        return Note(f"Not run yet: {shown(study_path(name))} does not exist "
                    f"(make study STUDY={study_path(name).stem} runs it).")
    found = of(name)
    return found if len(found.df) else found.nothing


def definition(ev):
    """Prints a line on the study; returns per variant its model, injected parameters, how many
    variants run that model (configurations tried) and its complete runs."""
    study = ev.study
    print(f"{shown(study.path)}: notebook {shown(study.notebook)}, seeds {study.seeds}, baseline "
          f"{study.baseline}; {ev.recorded()}.")
    model = {v: p.get("model_name", study.parameters.get("model_name")) for v, p in study.variants.items()}
    runs = ev.table.runs if ev.table is not None else {}
    return pd.DataFrame({
        "model": model,
        "injected parameters": {v: ", ".join(f"{k} = {x!r}" for k, x in p.items()) or "(none)"
                                for v, p in study.variants.items()},
        "configurations of this model": {v: sum(m == model[v] for m in model.values()) for v in model},
        "complete runs": {v: int(runs.get(v, 0)) for v in model}})


def cpus(df):
    """Each run's CPU; "not recorded" where its row has none."""
    return df.get("cpu", pd.Series(index=df.index, dtype=object)).fillna("not recorded")


def provenance(df):
    """Per variant where its runs ran: commits (dirty or not), whether `lib.rekey` carried them
    (from which variant and commit), devices, CPUs, threads, compiling, seconds a run."""
    if not len(df):
        return Note("No runs.")
    joined = lambda values: "; ".join(sorted(set(map(str, values))))
    carried = lambda r: f"from {r['variant']} at {r['from_commit'][:10]}" if isinstance(r, dict) else "no"
    return df.assign(cpu=cpus(df), rekeyed=df.get("rekeyed", pd.Series(index=df.index, dtype=object)).map(
        carried)).groupby("variant", observed=True).agg(
        commits=("git_commit", lambda c: ", ".join(sorted({x[:10] for x in c}))),
        rekeyed=("rekeyed", joined), dirty=("git_dirty", "any"), devices=("device", joined),
        cpus=("cpu", joined), threads=("cpu_threads", joined), compiled=("torch_compile", "all"),
        seconds_per_run=("seconds", "median"))


def ran_on(row):
    """Where a study's run ran, in words: device, CPU kind (where recorded), threads, compiled or eager."""
    return ", ".join(filter(None, (row["device"], row.get("cpu") if isinstance(row.get("cpu"), str) else None,
                                   f"{row['cpu_threads']} thread(s)",
                                   "compiled" if row.get("torch_compile") is True else "eager")))


def said(p, what="points"):
    """A paired comparison (`compare.paired`) in words."""
    n, mean, low, high = p
    return f"{mean:+.3f} {what} on {n} paired seeds (95 % interval {low:+.3f} … {high:+.3f})"


# --- 04_seeds: one recipe over seeds ----------------------------------------------------------
def seed_table(runs):
    """Per seed (`runs`: [{seed, history}]) the Result figures (`lib.run.summarize`)."""
    from lib.run import summarize
    return pd.DataFrame([{"seed": r["seed"], **summarize(r["history"])} for r in runs]).set_index("seed")


def seed_checks(table, mean_line=MEAN_LINE):
    """The targets: each seed holds LINE in each of its last 5 epochs; their mean, `mean_line`."""
    checks = [(f"seed {s}: each of the last 5 epochs >= {LINE:.2f} % (worst {row.min_last5:.2f} %)",
               row.min_last5 >= LINE) for s, row in table.iterrows()]
    mean = table.min_last5.mean()
    return checks + [(f"mean over seeds of the worst last-5 epoch {mean:.2f} % >= {mean_line:.2f} %",
                      mean >= mean_line)]


def seeds_shown(table, runs):
    return pd.DataFrame({
        "worst of last 5": table.min_last5.map(lambda x: f"{x:.2f} %"),
        "best of last 5": [f"{max(h['test_acc'] for h in r['history'][-5:]):.2f} %" for r in runs],
        "final epoch": table.final_test_acc.map(lambda x: f"{x:.2f} %"),
        f"margin over {LINE:.2f} %": (table.min_last5 - LINE).map(lambda m: f"{m:+.2f} points"),
        f"first epoch >= {LINE:.2f} %": table.first_epoch_ge_99_40.fillna(0).astype(int).map(lambda e: e or "never"),
    }, index=table.index)


def seed_analysis(table, mean_line=MEAN_LINE):
    worst = table.min_last5
    return lines([
        f"Seeds holding {LINE:.2f} % over all of their last 5 epochs: {int((worst >= LINE).sum())} of "
        f"{len(worst)}; the smallest margin is {worst.min() - LINE:+.2f} points (seed {worst.idxmin()}).",
        f"Mean over seeds of the worst last-5 epoch: {worst.mean():.2f} % (target {mean_line:.2f} %); "
        f"spread over seeds {worst.min():.2f} % to {worst.max():.2f} %.",
        f"Final-epoch accuracy over seeds: mean {table.final_test_acc.mean():.2f} %, from "
        f"{table.final_test_acc.min():.2f} % to {table.final_test_acc.max():.2f} %."])


def baseline_runs(name, values):
    """The study's baseline runs of today's code, {seed: row}, where every parameter in `values`
    that the study's notebook has (seeds, device, compiling aside) equals the study's; else why not."""
    from lib.study import FIXED

    study = load(name)
    ran = {**study.parameters, **study.variants[study.baseline]}
    free = {*FIXED, "seeds", "device", "torch_compile"}
    other = sorted(n for n in set(ran) & set(values) - free if ran[n] != values[n])
    if other:
        return Note("not comparable: " + ", ".join(f"{n}={values[n]!r} here, {ran[n]!r} in the study"
                                                   for n in other))
    return current_runs(study, study.baseline)


def beside_runner(table, name, values, full):
    """This notebook's runs (`table`, by seed) beside the study `name`'s baseline runs of the
    same seeds, paired: a line and the table, or a Note saying why not."""
    if not full:
        return Note("Not shown: not a full run.")
    second = baseline_runs(name, values)
    if isinstance(second, str):
        return Note(f"Not shown: {second}.")
    if not second:
        return Note(f"Not shown: the study {name!r} has no current run of today's code yet "
                    f"(make study STUDY={name}).")
    seeds = list(table.index)
    if not set(second) & set(seeds):
        return Note(f"Not shown: the study {name!r} has no run of these seeds "
                    f"({', '.join(map(str, seeds))}); it has run seeds {', '.join(map(str, sorted(second)))}.")
    runner = pd.Series({s: r["min_last5"] for s, r in second.items()})
    both = pd.DataFrame({"this run": table.min_last5, "studies runner": runner}).reindex(seeds)
    ok = both.dropna()
    where = "; ".join(sorted({ran_on(r) for r in second.values()}))
    p = compare.paired(both["this run"], both["studies runner"])
    print(f"Studies runner ({where}): {len(ok)} of {len(seeds)} seeds; "
          f"{int((ok['studies runner'] >= LINE).sum())} hold {LINE:.2f} % (here {int((ok['this run'] >= LINE).sum())}); "
          f"mean of the worst last-5 epoch {ok['studies runner'].mean():.2f} % (here {ok['this run'].mean():.2f} %)."
          + (f"\nRunner minus this run: {said(p)}." if p else ""))
    return both.map(lambda x: compare.pct(x) + " %" if not pd.isna(x) else "–")


def candidates(name, seeds):
    """The study's other variants on these `seeds`, each against its baseline paired by seed."""
    study = load(name)
    base = pd.Series({s: r["min_last5"] for s, r in current_runs(study, study.baseline).items()})
    out = []
    for variant in (v for v in study.variants if v != study.baseline):
        ran = pd.Series({s: r["min_last5"] for s, r in current_runs(study, variant).items() if s in seeds})
        if not len(ran):
            continue
        params = ", ".join(f"{k} = {v!r}" for k, v in study.variants[variant].items())
        p = compare.paired(base, ran)
        out.append(f"{variant} ({params}): {len(ran)} of {len(seeds)} seeds; {int((ran >= LINE).sum())} hold "
                   f"{LINE:.2f} %; mean of the worst last-5 epoch {ran.mean():.2f} %, worst {ran.min():.2f} %; "
                   + (f"minus {study.baseline} {said(p)}." if p else
                      f"too few seeds paired with {study.baseline} for an interval."))
    return lines(out) if out else Note(f"Not shown: no other variant of the study {name!r} has a run of these seeds.")


# --- 05_recipe: variants against a baseline ------------------------------------------------------
def recipe_analysis(ev, claims):
    """A recipe study's Analysis: each variant's paired verdict, `claims` ({variant: "worse" |
    "not better"}) against the record, the chance of a spurious verdict, what is missing or stale."""
    study, table, out = ev.study, ev.table, []
    if table is None:
        out.append(ev.nothing)
    elif study.baseline not in table.index:
        out.append(f"The baseline {study.baseline} has no complete run of today's code: nothing is compared.")
    else:
        base = table.loc[study.baseline]
        out.append(f"Baseline {study.baseline}: {base['runs']} seeds, mean {base['mean']:.3f} %, "
                   f"sd {base['sd']:.3f}, worst seed {base['worst']:.2f} %.")
        for variant, row in table.drop(study.baseline).iterrows():
            if row.paired_seeds < 2:
                out.append(f"{variant}: {row.runs} run(s), too few paired seeds to say anything yet.")
                continue
            stop = ev.stopped.get(variant) if row.runs < len(study.seeds) else None
            out.append(f"{variant}: {row.verdict} — {row['diff']:+.3f} points on {row.paired_seeds} paired "
                       f"seeds (95 % interval {row.diff_low:+.3f} … {row.diff_high:+.3f}); mean "
                       f"{row['mean']:.3f} %, worst seed {row.worst:.2f} %." + (f" S{stop[1:]}." if stop else ""))
        agree = {"worse": {"worse"}, "not better": {"worse", "within the noise"}}
        for variant, claim in claims.items():
            if variant in table.index and table.loc[variant, "paired_seeds"] >= 2:
                verdict = table.loc[variant, "verdict"]
                out.append(f"Claim '{variant} is {claim} than {study.baseline}': "
                           + ("the record agrees." if verdict in agree[claim] else f"the record says {verdict}."))
        n = int((table.drop(study.baseline).paired_seeds >= 2).sum())
        out.append(f"{n} variant{'s' * (n != 1)} compared with {study.baseline}: were none of them different, at least one "
                   f"interval would still exclude zero with probability 1 − 0.95^{n} ≈ {100 * (1 - 0.95 ** n):.0f} %.")
    if sum(ev.missing.values()):
        out.append(f"Not complete: {', '.join(f'{v} ({n} seeds missing)' for v, n in ev.missing.items() if n)}; "
                   f"`make study STUDY={study.name}` runs what is missing.")
    if len(ev.stale):
        out.append(f"{len(ev.stale)} runs are stale (their code changed since) and left out of the table: "
                   "rerun them before quoting them.")
    return lines(out)


# --- 06_frontier: accuracy against size ----------------------------------------------------------
def sizes(ev):
    """`compare.size_table` of a study's runs of today's code; None for a Note (`optional`'s)
    or a study without such runs."""
    return None if isinstance(ev, str) or not len(ev.df) else compare.size_table(ev.df, LINE)


def per_size(table):
    """A size table as a reader sees it, smallest first."""
    if table is None:
        return Note("Nothing to show.")
    return pd.DataFrame({
        "model": table.model, "parameters": table.params.map("{:,}".format),
        "MACs per image": table.macs.map("{:,}".format),
        f"held {LINE:.2f} %": [f"{h} of {n}" for h, n in zip(table.held, table.runs)],
        **compare.spread(table)})


def float_paths(first, second):
    """Per (model, seed) the worst last-5 epoch on two float paths (two `optional`s) and their
    difference; a Note where there is nothing to pair. Where a study runs a model in several
    variants (other recipes), the baseline's runs count, else its first variant's."""
    if isinstance(second, str):
        return second
    if isinstance(first, str):
        return Note("Nothing to compare it with: the report seeds' study has no run to pair.")

    def pick(ev):
        order = {**{v: i for i, v in enumerate(ev.study.variants)}, ev.study.baseline: -1}
        first_variant = ev.df.assign(rank=ev.df.variant.astype(str).map(order)).sort_values(["rank", "seed"])
        return first_variant.drop_duplicates(["model", "seed"]).set_index(["model", "seed"]).min_last5.sort_index()
    both = pd.DataFrame({"first path %": pick(first), "second path %": pick(second)}).dropna()
    if both.empty:
        return Note("Nothing to compare: the two studies share no (model, seed).")
    where = lambda ev: "; ".join(sorted(set(cpus(ev.df))))
    print(f"first path: {where(first)}; second path: {where(second)}")
    return both.assign(difference=both["second path %"] - both["first path %"]).round(3)


def best_means(table, aims, where=""):
    """Per (parameters, mean) of `aims`, a sentence: the best mean of `table` at that size or
    below against the aim."""
    out = []
    for limit, aim in aims:
        at = table[table.params <= limit]
        best = at.loc[at["mean"].idxmax()] if len(at) else None
        out.append(f"At ≤ {limit:,} parameters{where}: " + (
            f"the best mean is {best['mean']:.3f} % ({best.model}, {best.params:,}): the aim of "
            f"{aim:.1f} % is {'met' if best['mean'] >= aim else 'MISSED'}." if best is not None
            else "no size measured."))
    return out


def frontier_analysis(ev, table, confirmed, both, hold_aim=4000, aims=((2000, 99.2), (1000, 99.0))):
    """A frontier study's Analysis: which sizes hold, the best mean at each of `aims`, the report
    seeds against the aim of ≤ `hold_aim` parameters holding on all 10, the second float path."""
    if table is None:
        return lines([ev.nothing])
    out = []
    holds = table[table.held == table.runs]
    margin = holds[holds["mean"] >= MEAN_LINE]
    seeds_each = sorted({int(table.runs.min()), int(table.runs.max())})
    named = lambda t: ", ".join(f"{r.model} ({r.params:,})" for r in t.itertuples()) or "no size"
    out.append(f"{len(table)} sizes, {table.params.min():,} to {table.params.max():,} parameters, "
               f"{'–'.join(map(str, seeds_each))} tuning seed(s) each.")
    out.append(f"Every seed held {LINE:.2f} % in each of its last 5 epochs at: {named(holds)}; "
               f"with a mean ≥ {MEAN_LINE:.2f} % as well: {named(margin)}.")
    if len(margin):
        smallest = margin.iloc[0]
        out.append(f"The smallest with the margin: {smallest.model}, {smallest.params:,} parameters, mean "
                   f"{smallest['mean']:.3f} %, worst seed {smallest.worst:.2f} %." + "".join(
                       f" The size below it, {b.model} ({b.params:,}), held on {b.held} of {b.runs} seeds, "
                       f"mean {b.mean:.3f} %." for b in table[table.params < smallest.params].tail(1).itertuples()))
    out += best_means(table, aims)
    if {"Woolly_3762", "Frontier_sep_3592"} <= set(table.index):
        p = compare.paired(ev.by_seed("Woolly_3762"), ev.by_seed("Frontier_sep_3592"))
        if p:
            out.append(f"The course repo's layout (Woolly_3762, {table.loc['Woolly_3762', 'params']:,}) "
                       f"against Frontier_sep_3592 ({table.loc['Frontier_sep_3592', 'params']:,}), both "
                       f"with our recipe: {said(p)} for ours.")
    if confirmed is not None:
        for r in confirmed.itertuples():
            out.append(f"On the report seeds, which nobody tuned on: {r.model} ({r.params:,}) held on "
                       f"{r.held} of {r.runs}, mean {r.mean:.3f} %, worst seed {r.worst:.2f} %.")
        every = confirmed[(confirmed.held == confirmed.runs) & (confirmed.runs >= 10)]
        smallest = every.iloc[0] if len(every) else None
        out.append(f"The first target, a network of ≤ {hold_aim:,} parameters holding on all 10 report seeds: " + (
            "not met by the sizes that ran; none of them held on all 10." if smallest is None else
            f"{'met' if smallest.params <= hold_aim else 'not met'}: the smallest holding on all "
            f"{smallest.runs} is {smallest.model} ({smallest.params:,} parameters)."))
    if not isinstance(both, str):
        for model, pair in both.groupby(level="model"):
            second = pair["second path %"]
            p = compare.paired(pair["first path %"].droplevel("model"), second.droplevel("model"))
            out.append(f"On the second float path, {model} held on {int((second >= LINE).sum())} of "
                       f"{len(pair)} seeds, mean {second.mean():.3f} %, worst {second.min():.2f} %; the "
                       f"paths differ by " + (said(p) if p else f"{pair.difference.mean():+.3f} points")
                       + f", by {pair.difference.abs().max():.2f} at most on one seed.")
    out.append(f"Configurations tried: {len(ev.study.variants)} variants for {table.model.nunique()} "
               "models; each extra comparison is one more chance of a lucky interval.")
    return lines(out)


# --- 06_frontier: a recipe per size ----------------------------------------------------------
def recipes(names):
    """The frontier's recipe studies (`names`: comma-separated study names or .toml paths),
    each one a study of configurations for one layout and size: {name: `optional`'s}."""
    return {n: optional(n, "recipe_studies") for n in study_names(names)}


def tuned_sizes(found):
    """Per recipe study and size, the variant of the highest mean among those that ran every seed:
    a `compare.size_table` row with its study, baseline and configurations tried; None if none."""
    rows = []
    for name, ev in found.items():
        table = sizes(ev)
        if table is None:
            continue
        tried = table.groupby("params").size()
        for params, size in table[table.runs == len(ev.study.seeds)].groupby("params"):
            rows.append(size.loc[[size["mean"].idxmax()]].assign(
                study=name, baseline=ev.study.baseline, configurations=tried[params]))
    return pd.concat(rows).sort_values("params") if rows else None


def recipes_shown(found):
    """Every recipe study's variants against its baseline, paired by seed (`compare.shown`),
    one table; a Note where none has a run."""
    tables = {n: compare.shown(ev.table) for n, ev in found.items() if not isinstance(ev, str)}
    if not tables:
        return Note("Nothing to show: " + ("; ".join(found.values()) or "no recipe study asked for") + ".")
    return pd.concat(tables, names=["study"])


def recipes_analysis(found):
    """Each recipe study's Analysis (`recipe_analysis`, no claims made in advance), under its name."""
    if not found:
        return Note("No recipe study asked for.")
    return Note("\n".join(f"{name}:\n" + (f"- {ev}" if isinstance(ev, str) else recipe_analysis(ev, {}))
                          for name, ev in found.items()))


def tuned_analysis(ev, table, tuned, aims=((1700, 99.3), (1000, 99.0))):
    """What a recipe made for a size (`tuned_sizes`) bought, paired by seed: against its study's
    baseline; its layout with block 3's recipe against the fixed-recipe sizes around it (`table`);
    where every seed held, against the smallest larger size that holds; the best mean at `aims`."""
    if tuned is None:
        return lines(["No recipe per size has run every tuning seed yet."])
    out, studies = [], {name: of(name) for name in tuned.study.unique()}  # a study's rows read once
    for variant, r in tuned.iterrows():
        found = studies[r.study]
        recipe = lambda v: {k: x for k, x in found.study.variants[v].items() if k != "model_name"}
        same = found.df[found.df.variant == r.baseline].model.eq(r.model).all()
        layout = r.baseline if same else variant if recipe(variant) == recipe(r.baseline) else None
        out.append(f"{r.model} ({r.params:,} parameters, {r.study}): " + (
            f"the best of {r.configurations} configurations on the tuning seeds is {variant}"
            if r.configurations > 1 else f"one configuration on the tuning seeds, {variant}")
            + f", held {r.held} of {r.runs}, mean {r['mean']:.3f} %, worst seed {r.worst:.2f} %.")
        if variant != r.baseline:
            p = compare.paired(found.by_seed(r.baseline), found.by_seed(variant))
            out.append(("Against block 3's recipe on the same layout" if same else
                        "Against the study's baseline, another layout with block 3's recipe") + f" ({r.baseline}): "
                       + (said(p) if p else "too few paired seeds") + (
                           f"; picked as the best of {r.configurations}, so the interval flatters it."
                           if r.configurations > 1 else "."))
        near = [] if table is None or layout is None else [
            t for t in (table[table.params <= r.params].tail(1), table[table.params > r.params].head(1)) if len(t)]
        for t in near:
            p = compare.paired(ev.by_seed(t.index[0]), found.by_seed(layout))
            out.append(f"The layout with block 3's recipe ({layout}) against the fixed recipe's size "
                       f"{'below' if t.params.iloc[0] <= r.params else 'above'} it, {t.model.iloc[0]} "
                       f"({t.params.iloc[0]:,}): " + (said(p) if p else "no paired seeds") + ".")
        holds = None if table is None else table[(table.held == table.runs) & (table.params > r.params)].head(1)
        if r.held == r.runs and holds is not None and len(holds):
            p = compare.paired(ev.by_seed(holds.index[0]), found.by_seed(variant))
            out.append(f"Every tuning seed held at {r.params:,} parameters. Against the smallest size that holds "
                       f"with block 3's recipe, {holds.model.iloc[0]} ({holds.params.iloc[0]:,}): "
                       + (said(p) if p else "no paired seeds") + ".")
    both = pd.concat([t for t in (table, tuned) if t is not None], ignore_index=True)
    return lines(out + best_means(both, aims, ", either curve"))


# --- the CLI's compare -----------------------------------------------------------------------
def summary(name, baseline=None):
    """A study's evidence as text (`python -m lib.study compare`): the variant table, paired
    with the study's baseline or the variant `baseline`, how many runs hold LINE and where
    they ran."""
    import dataclasses  # here, not at the top: the top of this module is in every study report's key

    from lib.study import StudyError

    ev = of(name)
    if baseline not in (None, ev.study.baseline):
        if baseline not in ev.study.variants:
            raise StudyError(f"--baseline {baseline!r}: not a variant of {ev.study.path.name}; allowed: "
                             + ", ".join(ev.study.variants))
        ev = dataclasses.replace(ev, table=compare.variant_table(ev.df, baseline) if len(ev.df) else None)
    lines_ = [f"[{ev.study.name}] {ev.recorded()}"]
    if ev.table is None:
        return "\n".join(lines_ + [f"nothing to compare yet: make study STUDY={ev.study.name}"])
    with pd.option_context("display.width", 200, "display.max_columns", None):
        lines_.append(compare.shown(ev.table).to_string())
    held = ev.df.groupby("variant", observed=True).min_last5.agg(lambda v: f"{int((v >= LINE).sum())} of {len(v)}")
    lines_.append(f"held {LINE:.2f} % in each of the last 5 epochs: " + ", ".join(f"{v} {h}" for v, h in held.items()))
    lines_.append("ran on: " + "; ".join(sorted({ran_on(r) for r in ev.df.to_dict("records")})))
    return "\n".join(lines_)
