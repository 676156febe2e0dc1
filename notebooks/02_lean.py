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
# # Block 2 — a leaner layout, same recipe
#
# ## Target
# Block 1's layer table shows where the seed model spends itself: 32 channels at receptive
# field 3 (288 weights + 64 BN parameters, and the largest activation map of the network) only
# to be squeezed back to 8 by a 1×1 — capacity at the stage that can see least. Model_2
# moves it to where the receptive field is large:
# - 8 → 12 channels before the single max-pool (at RF 5, where MNIST's strokes are), then
#   three 3×3 convs of 12 → 16 → 16 channels, global average pooling and a 1×1 classifier;
# - BatchNorm *before* ReLU (normalise, then rectify), and no dropout — with so few channels
#   Dropout2d removes a large share of the signal and block 1 was not over-fitting;
# - **the recipe stays block 1's** (SGD lr 0.01, momentum 0.9, batch 64, ±7°) so the
#   comparison isolates the architecture.
#
# Targets: **< 7,000 parameters** (at least 11 % fewer than block 1), **fewer multiply-accumulates
# per image than block 1** (1,278,364), and **best test accuracy ≥ 99.2 %** within 15 epochs.

# %% tags=["parameters"]
model_name = "Model_2"
epochs = 15
batch_size = 64
lr = 0.01
seed = 1
device = "auto"     # auto: cuda, then mps, then cpu
train_limit = None  # None: all 60,000 training images; a small int for smoke runs
test_limit = None   # None: all 10,000 test images
rotation = 7.0      # random rotation of each training image, ± degrees
dropout = 0.0
torch_compile = "auto"  # "auto": on the CPU if a C++ compiler is found; True; False
out_dir = "reports"

# %%
import torch

from lib import plots, targets
from lib.models import MODELS
from lib.run import Run, check_targets, result_table, summarize
from lib.summary import count_params, macs_per_image, show
from lib.train import evaluate, fit, mnist_batches

run = Run("02_lean", globals())
run.info()

# %% [markdown]
# ## Data
# As in block 1: training images rotated by up to ±`rotation`°, the real 10,000-image test set.

# %%
train, test = mnist_batches(batch_size, run.device, train_limit, test_limit, rotation, seed)
plots.data_overview(train, test)

# %% [markdown]
# ## Model

# %%
model = MODELS[model_name](dropout=dropout).to(run.device, memory_format=torch.channels_last)
params, macs = count_params(model), macs_per_image(model)
show(model, model_name)

# %% [markdown]
# ## Training
# Block 1's optimiser and (within 15 epochs, constant) learning rate.

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
# Generated from this run's metrics (also written to `<out_dir>/02_lean.metrics.json`).

# %%
result = summarize(history)
target = {"params_below": 7000, "macs_below": 1278364, "best_at_least": 99.2}
checks = [
    (f"parameters {params:,} < 7,000", params < 7000),
    (f"MACs per image {macs:,} < 1,278,364 (block 1)", macs < 1278364),
    (f"best test accuracy {result['best_test_acc']:.2f} % >= 99.2 %", result["best_test_acc"] >= 99.2),
]
run.save_metrics(model=model_name, params=params, macs=macs, test_size=len(test.y),
                 target=target, target_met=all(ok for _, ok in checks), **result, history=history)
result_table(run, model_name, params, result, len(test.y))

# %% [markdown]
# ## Analysis
# Generated from this run, against block 1's model (7,904 parameters, 1,278,364 MACs):

# %%
gap = result["final_train_acc"] - result["final_test_acc"]
print(f"- Size: {params:,} parameters ({100 * (1 - params / 7904):.0f} % fewer than block 1) and "
      f"{macs:,} MACs per image ({100 * (1 - macs / 1278364):.0f} % fewer).")
print(f"- Accuracy: best {result['best_test_acc']:.2f} % at epoch {result['best_epoch']}; last 3 "
      f"epochs at worst {result['min_last3']:.2f} %, last 5 at worst {result['min_last5']:.2f} % — "
      f"the assignment criterion (the last 5) is {'met' if result['min_last5'] >= targets.LINE else 'NOT met'}.")
print(f"- At the constant learning rate the last 5 epochs spread over {result['spread_last5']:.2f} "
      f"points; final train {result['final_train_acc']:.2f} % vs test {result['final_test_acc']:.2f} %.")

# %% [markdown]
# Set these lines against block 1's Result (same recipe, same seed): the lean layout is
# clearly smaller and cheaper, but it does not match the seed model's accuracy — a smaller
# network does not get better by being trained the same way. And with a learning rate that
# never decays inside 15 epochs, the test accuracy of both keeps moving from epoch to epoch,
# where "99.40 % over the last epochs" asks for the opposite.
#
# **Next (block 3):** anneal — a one-cycle schedule with a high peak and a long cosine decay
# — and add a little weight decay; and since over half of the MACs above are in the 8 → 12
# conv before the pool, reach receptive field 5 at full resolution with one 5×5 conv of 8
# channels, keep a cheaper 3×3 conv of 8 channels (not 12) after it and the max-pool, and
# spend the saved parameters on depth after the pool.

# %% [markdown]
# ## Target check
# Checked on a full run (all data, 15 epochs): PASS or MISS per target, then the verdict (a miss
# is recorded in the metrics and marked in the index; the notebook still finishes). On a smoke
# run the cell shows the targets but does not check them.

# %%
check_targets(run, checks)
