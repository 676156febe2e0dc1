# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Seeds study — is block 3 a recipe or a lucky seed?
#
# Not a fourth block: block 3's model and recipe, unchanged (same defaults as `03_final`),
# trained once per seed. The seed moves the weight initialisation, the shuffling, every
# augmentation draw and nothing else.
#
# ## Target
# One run that holds 99.40 % says little: another seed, or another machine's float rounding
# (the last digits of every figure here differ from CPU to CPU), can land a few test digits
# lower. So the claim is made over ten seeds, with a margin:
# - **every seed: each of the last 5 epochs ≥ 99.40 %** on the full 10,000-image test set;
# - **the mean over seeds of each seed's worst last-5 epoch ≥ 99.50 %** — a tenth of a point,
#   ten test digits, above the line, so that a seed or a machine nobody tried is safe too.
#
# The seeds here (1–10) are not the ones the recipe was tuned on.

# %% tags=["parameters"]
model_name = "Model_3"
seeds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
epochs = 15
batch_size = 128
lr = 0.3
device = "auto"
train_limit = None
test_limit = None
rotation = 7.0
dropout = 0.0
weight_decay = 1e-4
ema_decay = 0.999  # test the moving average of the weights; 0: the weights themselves
muon_lr = 0.2      # peak lr of Muon for the conv weights (SGD for the rest); 0: SGD for all
bn_recompute = 10000  # BatchNorm statistics recomputed on this many training images before each test; 0: not
torch_compile = "auto"  # "auto": on the CPU if a C++ compiler is found; True; False
study = "seeds"  # the same seeds run by the studies runner (studies/<study>.toml), shown beside this run
out_dir = "reports"

# %%
import pandas as pd

from lib import plots
from lib.compare import interval
from lib.run import Run, check_targets, summarize
from lib.study import baseline_runs, candidate_runs
from lib.summary import count_params
from lib.train import fit, mnist_batches, recipe, seed_everything

run = Run("04_seeds", globals())
run.info()

# %% [markdown]
# ## One training run per seed

# %%
runs = []
for seed in seeds:
    print(f"--- seed {seed}")
    seed_everything(seed)
    train, test = mnist_batches(batch_size, run.device, train_limit, test_limit, rotation, seed)
    model, optimizer, scheduler, ema = recipe(run.params, len(train), run.device)
    history = fit(model, train, test, epochs, optimizer, scheduler, per_batch=True, ema=ema,
                  compile=run.compile, bn_recompute=bn_recompute)
    runs.append({"seed": seed, "history": history})
params = count_params(model)

# %%
plots.seed_curves(runs)
plots.seed_ranges(runs, last=5, line=99.40, mean_line=99.50)

# %% [markdown]
# ## Result
# Generated from this run's metrics (also written to `<out_dir>/04_seeds.metrics.json`).

# %%
table = pd.DataFrame([{"seed": r["seed"], **summarize(r["history"])} for r in runs]).set_index("seed")
mean_worst = table.min_last5.mean()
checks = [(f"seed {s}: each of the last 5 epochs >= 99.40 % (worst {row.min_last5:.2f} %)",
           row.min_last5 >= 99.40) for s, row in table.iterrows()]
checks.append((f"mean over seeds of the worst last-5 epoch {mean_worst:.2f} % >= 99.50 %",
               mean_worst >= 99.50))
run.save_metrics(model=model_name, params=params, epochs=epochs, test_size=len(test.y),
                 target={"min_last5_at_least": 99.40, "mean_min_last5_at_least": 99.50,
                         "every_seed": seeds},
                 target_met=all(ok for _, ok in checks), mean_min_last5=mean_worst, runs=runs)
print(f"{model_name}, {params:,} parameters, {epochs} epochs, {len(test.y):,} test images, "
      f"{len(seeds)} seeds, wall time {run.wall_seconds():.0f} s on {run.info()['device']}")
pct = lambda x: f"{x:.2f} %"
pd.DataFrame({"worst of last 5": table.min_last5.map(pct),
              "best of last 5": [pct(max(h["test_acc"] for h in r["history"][-5:])) for r in runs],
              "final epoch": table.final_test_acc.map(pct),
              "margin over 99.40 %": (table.min_last5 - 99.40).map(lambda m: f"{m:+.2f} points"),
              "first epoch >= 99.40 %": table.first_epoch_ge_99_40.fillna(0).astype(int)
                                        .map(lambda e: e or "never")}, index=table.index)

# %% [markdown]
# ## Analysis
# Generated from this run:

# %%
held = sum(ok for _, ok in checks[:-1])
print(f"- Seeds holding 99.40 % over all of their last 5 epochs: {held} of {len(seeds)}; the "
      f"smallest margin is {table.min_last5.min() - 99.40:+.2f} points (seed {table.min_last5.idxmin()}).")
print(f"- Mean over seeds of the worst last-5 epoch: {mean_worst:.2f} % (target 99.50 %); "
      f"spread over seeds {table.min_last5.min():.2f} % to {table.min_last5.max():.2f} %.")
print(f"- Final-epoch accuracy over seeds: mean {table.final_test_acc.mean():.2f} %, "
      f"from {table.final_test_acc.min():.2f} % to {table.final_test_acc.max():.2f} %.")

# %% [markdown]
# The seed changes the initial weights, the order of the batches and every augmentation draw;
# the plot of the last 5 epochs shows how far that moves the end result, and how far every
# seed stays from the line. One test digit is 0.01 %: the margin in the table is counted in
# digits of the 10,000. Another machine gives other last digits; the Target asks the mean for a
# tenth of a point of margin for that reason, and the lines above say whether this run has it.

# %% [markdown]
# ### The same seeds on a second float path
# The studies runner trains the same recipe on the same seeds another way: block 3's notebook
# once per seed, in parallel workers of a few threads each (one each on 2 cores), in
# `studies/<study>.toml` (by default `studies/seeds.toml`; `make study STUDY=seeds` runs what
# is missing). Other float rounding, so other last digits. Its committed record (runs of
# today's code only) beside this run, seed by seed; the Target check below judges this run
# alone, and the two paths are compared here:

# %%
second = baseline_runs(study, run.params)
if isinstance(second, str) or not run.full:
    print(f"Not shown: {second if isinstance(second, str) else 'not a full run'}.")
elif not second:
    print(f"Not shown: the study {study!r} has no current run of today's code yet (make study STUDY={study}).")
elif not set(second) & set(seeds):
    print(f"Not shown: the study {study!r} has no run of these seeds ({', '.join(map(str, seeds))}); "
          f"it has run seeds {', '.join(map(str, sorted(second)))}.")
else:
    both = pd.DataFrame({"this run": table.min_last5,
                         "studies runner": pd.Series({s: r["min_last5"] for s, r in second.items()})}
                        ).reindex(seeds)
    paired = both.dropna()
    where = "; ".join(sorted({", ".join(filter(None, (
        r["device"], r.get("cpu"), f"{r['cpu_threads']} thread(s)",
        "compiled" if r.get("torch_compile") else "eager"))) for r in second.values()}))
    print(f"Studies runner ({where}): {len(paired)} of {len(seeds)} seeds; "
          f"{(paired['studies runner'] >= 99.40).sum()} hold 99.40 % "
          f"(here {(paired['this run'] >= 99.40).sum()}); mean of the worst last-5 epoch "
          f"{paired['studies runner'].mean():.2f} % (here {paired['this run'].mean():.2f} %).")
    if len(paired) >= 2:
        diff, half = interval((paired["studies runner"] - paired["this run"]).tolist())
        print(f"Runner minus this run, paired by seed: {diff:+.3f} points "
              f"(95 % interval {diff - half:+.3f} … {diff + half:+.3f}).")
    display(both.map(lambda x: "–" if pd.isna(x) else f"{x:.2f} %"))

# %% [markdown]
# The seeds study also runs block 3 as it was before the search for a margin
# (`Model_3_maxpool`: a plain max-pool, SGD for every weight, the averaged BatchNorm
# statistics; see `05_recipe`) on the same seeds and path: what adopting the pool, Muon and
# the measured statistics changed on seeds nobody tuned on. Each such variant, paired by
# seed with the runner's `Model_3` (a variant with no run of today's code is not listed):

# %%
shown_with = run.full and isinstance(second, dict) and second  # the baseline runs, above
candidates = {v: {s: r for s, r in by_seed.items() if s in seeds}
              for v, by_seed in candidate_runs(study).items()} if shown_with else {}
if not any(candidates.values()):
    print("Not shown: " + ("not a full run." if not run.full else
                           f"no other variant of the study {study!r} has a run of these seeds."
                           if candidates else "no other variant to show."))
for variant, runs in candidates.items():
    if not runs:
        continue
    ran = pd.Series({s: r["min_last5"] for s, r in runs.items()}).reindex(seeds).dropna()
    base = pd.Series({s: r["min_last5"] for s, r in second.items()}).reindex(ran.index).dropna()
    params = next(iter(runs.values()))["params"]
    line = (f"{variant} ({', '.join(f'{k} = {v!r}' for k, v in params.items())}): "
            f"{len(ran)} of {len(seeds)} seeds; {(ran >= 99.40).sum()} hold 99.40 %; mean of the worst "
            f"last-5 epoch {ran.mean():.2f} %, worst {ran.min():.2f} %; ")
    if len(base) >= 2:
        diff, half = interval((ran[base.index] - base).tolist())
        line += (f"minus Model_3 on {len(base)} paired seeds {diff:+.3f} points "
                 f"(95 % interval {diff - half:+.3f} … {diff + half:+.3f}).")
    else:
        line += f"{len(base)} seed(s) paired with Model_3: too few for an interval."
    print(line)

# %% [markdown]
# ## Target check
# Checked on a full run (all data, 15 epochs): PASS or MISS per target, then the verdict (a miss
# is recorded in the metrics and marked in the index; the notebook still finishes). On a smoke
# run the cell shows the targets but does not check them.

# %%
check_targets(run, checks)
