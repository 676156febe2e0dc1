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
# Not a fourth block: block 3's model and recipe, unchanged (same defaults as
# `03_final`, moving average of the weights included), trained once per seed. The seed moves the weight initialisation, the
# shuffling, the rotations and nothing else.
#
# Target, asserted on a full run: **for every seed, each of the last 3 epochs ≥ 99.40 %** on
# the full 10,000-image test set. The last 5 epochs are shown too.

# %% tags=["parameters"]
model_name = "Model_3"
seeds = [1, 2, 3]
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
torch_compile = "auto"  # "auto": on the CPU if a C++ compiler is found; True; False
out_dir = "reports"

# %%
import pandas as pd
import torch

from lib import plots
from lib.models import MODELS
from lib.run import Run, check_targets, summarize
from lib.summary import count_params
from lib.train import ema_of, fit, mnist_batches, one_cycle, seed_everything

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
    model = MODELS[model_name](dropout=dropout).to(run.device, memory_format=torch.channels_last)
    optimizer, scheduler = one_cycle(model, lr, epochs, len(train), weight_decay)
    ema = ema_of(model, ema_decay) if ema_decay else None
    history = fit(model, train, test, epochs, optimizer, scheduler, per_batch=True, ema=ema,
                  compile=run.compile)
    runs.append({"seed": seed, "history": history})
params = count_params(model)

# %%
plots.seed_curves(runs)

# %% [markdown]
# ## Result
# Generated from this run's metrics (also written to `<out_dir>/04_seeds.metrics.json`).

# %%
table = pd.DataFrame([{"seed": r["seed"], **summarize(r["history"])} for r in runs]).set_index("seed")
table = table.drop(columns="median_epoch_seconds")  # timings: in each run's history
checks = [(f"seed {s}: each of the last 3 epochs >= 99.40 % (min {row.min_last3:.2f} %)",
           row.min_last3 >= 99.40) for s, row in table.iterrows()]
run.save_metrics(model=model_name, params=params, epochs=epochs, test_size=len(test.y),
                 target={"min_last3_at_least": 99.40, "every_seed": seeds},
                 target_met=all(ok for _, ok in checks), runs=runs)
print(f"{model_name}, {params:,} parameters, {epochs} epochs, {len(test.y):,} test images, "
      f"{len(seeds)} seeds, wall time {run.wall_seconds():.0f} s on {run.info()['device']}")
table

# %% [markdown]
# ## Analysis
# Generated from this run:

# %%
finals = table.final_test_acc
print(f"- Seeds meeting the target (each of the last 3 epochs >= 99.40 %): "
      f"{sum(ok for _, ok in checks)} of {len(checks)}.")
print(f"- Worst epoch among the last 3 of any seed: {table.min_last3.min():.2f} %; among the last 5: "
      f"{table.min_last5.min():.2f} %.")
print(f"- Final-epoch accuracy over seeds: mean {finals.mean():.2f} %, range "
      f"{finals.min():.2f}-{finals.max():.2f} %.")

# %% [markdown]
# The seed changes the initial weights, the order of the batches and every rotation; the
# table shows how much the end result moves with them. Compare the worst seed's "min_last3"
# with 99.40 %: the margin, if any, is at most a few hundredths of a percent — a handful of
# the 10,000 test digits — which is why the target is checked on every seed, not on the best
# one, and why the last 5 epochs are shown too.

# %% [markdown]
# ## Target check
# Asserted on a full run (all data, 15 epochs); on a smoke run the cell says it is not asserted.

# %%
check_targets(run, checks)
