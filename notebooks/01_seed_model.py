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
# # Block 1 — the seed model, measured honestly
#
# ## Target
# We start from a student repo whose "Block 2" network (7,904 parameters) claims 99.5 % at
# epoch 16 — but its `test_loader` wraps the *training* set (its log reads `58677/60000`), so
# that number says nothing about generalisation. Before improving anything we need an honest
# baseline:
# - **reproduce the network exactly** (Model_1: same layers, same output shapes, 7,904
#   parameters) and its recipe: SGD lr 0.01, momentum 0.9, `StepLR(15, 0.1)`, batch 64,
#   random rotation ±7°, Dropout2d 0.01;
# - **measure it on the real 10,000-image test set, within the 15-epoch budget**;
# - expect a working model — best test accuracy ≥ 99.0 % — and find out whether it meets the
#   assignment (every one of the last 5 epochs ≥ 99.40 %). That last one is *measured here,
#   not assumed*; the next blocks exist to fix whatever it shows.

# %% tags=["parameters"]
model_name = "Model_1"
epochs = 15
batch_size = 64
lr = 0.01
seed = 1
device = "auto"     # auto: cuda, then mps, then cpu
train_limit = None  # None: all 60,000 training images; a small int for smoke runs
test_limit = None   # None: all 10,000 test images
rotation = 7.0      # random rotation of each training image, ± degrees
dropout = 0.01
torch_compile = "auto"  # "auto": on the CPU if a C++ compiler is found; True; False
out_dir = "reports"

# %%
import torch

from lib import plots, targets
from lib.models import MODELS
from lib.run import Run, check_targets, result_table, summarize
from lib.summary import count_params, show
from lib.train import evaluate, fit, mnist_batches

run = Run("01_seed_model", globals())
run.info()

# %% [markdown]
# ## Data
# Training images rotated by up to ±`rotation`° each (on the device, whole batches); the test
# set is the real MNIST test split — 10,000 images, never augmented. (The seed also applied a
# rare CenterCrop 22 → Resize 28; we leave it out.)

# %%
train, test = mnist_batches(batch_size, run.device, train_limit, test_limit, rotation, seed)
plots.data_overview(train, test)

# %% [markdown]
# The rotation runs on whole batches on the device (`affine_grid` + `grid_sample`, one angle
# per image). Same digits, same angles, next to torchvision's per-image PIL rotation:

# %%
plots.rotation_check(train.x, rotation)

# %% [markdown]
# ## Model
# The seed network layer by layer: ReLU → BatchNorm → Dropout2d after every conv but the
# last, no biases. Then the receptive field computed from the layers.

# %%
model = MODELS[model_name](dropout=dropout).to(run.device, memory_format=torch.channels_last)
params = count_params(model)
show(model, model_name)

# %% [markdown]
# ## Training
# The seed's recipe. Note that `StepLR(step_size=15)` first lowers the learning rate *after*
# epoch 15: inside the 15-epoch budget the rate is constant.
#
# When `torch_compile` is on (the run info above), `fit` first compiles the model with
# `torch.compile`: BatchNorm, ReLU and dropout become fused kernels, the arithmetic is the same
# up to float rounding, and epoch 1's time includes the compiling.

# %%
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=15, gamma=0.1)
history = fit(model, train, test, epochs, optimizer, scheduler, compile=run.compile)

# %%
plots.curves(history, model_name)

# %%
_, _, preds = evaluate(model, test, keep_predictions=True)
plots.misclassified(test.x, test.y, preds)
plots.confusion(test.y, preds)

# %% [markdown]
# ## Result
# Generated from this run's metrics (also written to `<out_dir>/01_seed_model.metrics.json`).

# %%
result = summarize(history)
target = {"params_equal": 7904, "test_size": 10000, "best_at_least": 99.0}
checks = [
    (f"parameters {params:,} == 7,904 (exact reproduction)", params == 7904),
    (f"test images {len(test.y):,} == 10,000", len(test.y) == 10_000),
    (f"best test accuracy {result['best_test_acc']:.2f} % >= 99.0 %", result["best_test_acc"] >= 99.0),
]
assignment = result["min_last5"] >= targets.LINE
run.save_metrics(model=model_name, params=params, test_size=len(test.y), target=target,
                 target_met=all(ok for _, ok in checks), assignment_met=assignment,
                 **result, history=history)
print(f"Assignment criterion (each of the last 5 epochs >= {targets.LINE:.2f} %): "
      f"{'met' if assignment else 'NOT met'} (min of last 5: {result['min_last5']:.2f} %)")
result_table(run, model_name, params, result, len(test.y))

# %% [markdown]
# ## Analysis
# The Result above is what the seed network really does on unseen digits within the 15-epoch
# budget; the first three points below are generated from this run.

# %%
lr_epochs = sorted({row["lr"] for row in history})
print(f"- Assignment criterion: {'met' if assignment else 'NOT met'}: the last 5 epochs reach "
      f"{result['min_last5']:.2f} % at worst (best {result['best_test_acc']:.2f} % at epoch "
      f"{result['best_epoch']}).")
print(f"- Learning rate over all {epochs} epochs: {lr_epochs}: StepLR(15) never fires inside "
      f"the budget, so nothing settles the end; the last 5 epochs spread over "
      f"{result['spread_last5']:.2f} points of test accuracy.")
gap = result["final_train_acc"] - result["final_test_acc"]
print(f"- Final epoch: train {result['final_train_acc']:.2f} % vs test {result['final_test_acc']:.2f} %"
      f" ({'train below test: rotation and dropout make training harder than testing; the model is not over-fitting' if gap < 0 else 'train above test'}).")

# %% [markdown]
# - **Capacity in the wrong place.** The layer table spends the widest layer — 32 channels,
#   288 weights and the largest activation map — at receptive field 3, where a filter sees a
#   3×3 patch, only to squeeze it back to 8 channels with a 1×1; the layers that see whole
#   strokes (RF ≥ 14) get 10–16 channels.
# - **Order and regularisation.** ReLU comes *before* BatchNorm, so BN normalises an already
#   one-sided signal; Dropout2d follows every conv, including the 8- and 10-channel ones, where
#   dropping a channel removes a tenth of the signal.
#
# **Next (block 2):** move the channels to where the receptive field is large, BN before
# ReLU, no dropout — and keep this recipe, so the comparison isolates the architecture.

# %% [markdown]
# ## Target check
# Checked on a full run (all data, 15 epochs): PASS or MISS per target, then the verdict (a miss
# is recorded in the metrics and marked in the index; the notebook still finishes). On a smoke
# run the cell shows the targets but does not check them.

# %%
check_targets(run, checks)
