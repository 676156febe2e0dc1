# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Block 3 — Model_3 with a one-cycle learning rate: 99.40 % held to the end
#
# ## Target
# Block 2 showed that the lean layout trains to within a few hundredths of 99.4 %, but with
# a constant-then-stepped learning rate the test accuracy still wanders from epoch to epoch
# at the end. Two changes, each aimed at that Analysis:
# - **capacity where it counts**: the first conv after the pool goes from 12 to 16 channels
#   (Model_3, still well under 8,000 parameters);
# - **a one-cycle schedule** (warm-up to `lr`, then a long anneal to `lr/1000`): large steps
#   early to get there in few epochs, tiny steps at the end so the last epochs settle instead
#   of wandering.
#
# The targets, asserted by the last cell on a full run: **< 8,000 parameters, ≤ 15 epochs, and
# every one of the last 3 epochs ≥ 99.40 % on the full 10,000-image test set.**

# %% tags=["parameters"]
model_name = "Model_3"
epochs = 15
batch_size = 128
lr = 0.05          # peak of the one-cycle schedule
seed = 1
device = "auto"
train_limit = None  # None = all 60,000 training images; a small int for smoke runs
test_limit = None   # None = all 10,000 test images
rotation = 7.0      # random rotation, ± degrees, per image
dropout = 0.0
out_dir = "reports"

# %%
import torch
from IPython.display import display

from lib import plots
from lib.data import MEAN, STD
from lib.models import MODELS
from lib.run import Run, check_targets, result_table, summarize
from lib.summary import count_params, layer_table, rf_table
from lib.train import evaluate, fit, mnist_batches

run = Run("03_final", globals())
run.info()

# %% [markdown]
# ## Data
# The training split is rotated by up to ±`rotation` degrees per image, on the device, in
# whole batches; the test split is the real 10,000-image MNIST test set, never augmented.

# %%
train, test = mnist_batches(batch_size, run.device, train_limit, test_limit, rotation, seed)
print(f"train {tuple(train.x.shape)}  test {tuple(test.x.shape)}")
print(f"train pixel mean {train.x.mean():.4f} std {train.x.std():.4f} (normalised with {MEAN}, {STD})")
print("train label counts", torch.bincount(train.y, minlength=10).tolist())
print("test  label counts", torch.bincount(test.y, minlength=10).tolist())
plots.sample_grid(train.x.cpu(), train.y.cpu());

# %% [markdown]
# ## Model
# Every layer's output shape and parameters, then the receptive field computed from the
# layers (`r_out = r_in + (k - 1) · j_in`, `j_out = j_in · s`).

# %%
model = MODELS[model_name](dropout=dropout).to(run.device, memory_format=torch.channels_last)
params = count_params(model)
print(f"{model_name}: {params:,} trainable parameters")
display(layer_table(model).style.hide())
display(rf_table(model).style.hide())

# %% [markdown]
# ## Training
# SGD with momentum 0.9; one-cycle schedule stepped every batch (20 % warm-up from `lr/10`).

# %%
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
scheduler = torch.optim.lr_scheduler.OneCycleLR(
    optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=len(train),
    pct_start=0.2, div_factor=10, final_div_factor=100)
history = fit(model, train, test, epochs, optimizer, scheduler, per_batch=True)

# %%
plots.curves(history, model_name);

# %%
_, _, preds = evaluate(model, test, keep_predictions=True)
plots.misclassified(test.x.cpu(), test.y.cpu(), preds);
plots.confusion(test.y, preds);

# %% [markdown]
# ## Result
# Generated from this run's metrics.

# %%
result = summarize(history)
targets = {"params_below": 8000, "max_epochs": 15, "min_last3_at_least": 99.40}
checks = [
    (f"parameters {params:,} < 8,000", params < 8000),
    (f"epochs {epochs} <= 15", epochs <= 15),
    (f"each of the last 3 epochs >= 99.40 % (min {result['min_last3']:.2f} %)",
     result["min_last3"] >= 99.40),
]
target_met = all(ok for _, ok in checks)
metrics_path = run.save_metrics(model=model_name, params=params, test_size=len(test.y),
                                target=targets, target_met=target_met, **result, history=history)
display(result_table([
    ("model", model_name), ("parameters", f"{params:,}"), ("epochs", epochs),
    ("best test accuracy", f"{result['best_test_acc']:.2f} % (epoch {result['best_epoch']})"),
    ("min of last 3 epochs", f"{result['min_last3']:.2f} %"),
    ("min of last 5 epochs", f"{result['min_last5']:.2f} %"),
    ("first epoch >= 99.40 %", result["first_epoch_ge_99_40"] or "never"),
    ("test images", len(test.y)), ("wall time", f"{run.wall_seconds():.0f} s"),
    ("device", run.info()["device"]), ("seed", seed),
]))

# %% [markdown]
# ## Analysis
# (Written from the committed full run; the figures quoted are computed below so they
# cannot drift from the Result.)

# %%
print(f"Target check: {'met' if target_met else 'MISSED'}")

# %% [markdown]
# ## Target check

# %%
check_targets(run, checks)
