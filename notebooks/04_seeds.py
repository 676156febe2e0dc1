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
label_smoothing = 0.0  # the share of each target spread over all classes in the training loss
anneal_epochs = None  # the one-cycle schedule ends after this many epochs, then holds its last lr; None: all
torch_compile = "auto"  # "auto": on the CPU if a C++ compiler is found; True; False
study = "seeds"  # the same seeds run by the studies runner (studies/<study>.toml), shown beside this run
out_dir = "reports"

# %%
from lib import evidence, plots, targets
from lib.run import Run, check_targets
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
                  compile=run.compile, bn_recompute=bn_recompute, label_smoothing=label_smoothing)
    runs.append({"seed": seed, "history": history})
params = count_params(model)

# %%
plots.seed_curves(runs)
plots.seed_ranges(runs)

# %% [markdown]
# ## Result
# Generated from this run's metrics (also written to `<out_dir>/04_seeds.metrics.json`).

# %%
table = evidence.seed_table(runs)
checks = evidence.seed_checks(table)
run.save_metrics(model=model_name, params=params, epochs=epochs, test_size=len(test.y),
                 target={"min_last5_at_least": targets.LINE,
                         "mean_min_last5_at_least": targets.MEAN_LINE, "every_seed": seeds},
                 target_met=all(ok for _, ok in checks), mean_min_last5=table.min_last5.mean(), runs=runs)
print(f"{model_name}, {params:,} parameters, {epochs} epochs, {len(test.y):,} test images, "
      f"{len(seeds)} seeds, wall time {run.wall_seconds():.0f} s on {run.info()['device']}")
evidence.seeds_shown(table, runs)

# %% [markdown]
# ## Analysis
# Generated from this run:

# %%
evidence.seed_analysis(table)

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
evidence.beside_runner(table, study, run.params, run.full)

# %% [markdown]
# The seeds study also runs block 3 as it was before the search for a margin
# (`Model_3_maxpool`: a plain max-pool, SGD for every weight, the averaged BatchNorm
# statistics; see `05_recipe`) on the same seeds and path: what adopting the pool, Muon and
# the measured statistics changed on seeds nobody tuned on. Each such variant, paired by
# seed with the runner's `Model_3` (a variant with no run of today's code is not listed):

# %%
evidence.candidates(study, seeds)

# %% [markdown]
# ## Target check
# Checked on a full run (all data, 15 epochs): PASS or MISS per target, then the verdict (a miss
# is recorded in the metrics and marked in the index; the notebook still finishes). On a smoke
# run the cell shows the targets but does not check them.

# %%
check_targets(run, checks)
