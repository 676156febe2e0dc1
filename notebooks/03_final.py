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
# # Block 3 — downsample first, go deep, one-cycle schedule: 99.40 % held to the end
#
# ## Target
# Block 2's Analysis: the lean layout is smaller and cheaper than the seed model, but with a
# learning rate that never decays inside 15 epochs the test accuracy keeps moving from epoch
# to epoch, which is the opposite of "held over the last epochs". Its layer table also shows
# where the compute goes: the 8 → 12 conv at 24×24, *before* the pool, does over half of the
# model's multiply-accumulates. The changes, aimed at both:
# - **downsample first, go deep late** (Model_3): a single 5×5 conv of 8 channels with stride 2
#   turns the 28×28 image into a 12×12 map at once (receptive field 5). A stroke is two to
#   four pixels wide, so a 5×5 window every second pixel still sees each stroke's edges; and
#   no layer works at full resolution any more — no 26×26 map for BatchNorm, ReLU and a
#   max-pool to walk over, forwards and backwards, which is where a large share of a CPU
#   training step goes with small channel counts. A strided conv is a learned downsampling:
#   it keeps what the loss asks for, not simply the largest of four values. Then four 3×3
#   convs of 16, 16, 16 and 12 channels work on the 12×12 map, up to RF 21 before the global
#   average pool. The second conv runs on 10×10 = 100 pixels instead of block 2's
#   24×24 = 576, and every later one on fewer, so the network is deeper than block 2's and
#   still does far fewer multiply-accumulates (the summary below counts them); the parameters
#   block 2 saved go into that depth (still under 8,000); still no dropout;
# - **a one-cycle schedule**: a 3-epoch warm-up from `lr/10` to a high peak `lr`, then a
#   cosine anneal to `lr/1000`, stepped every batch; big steps early to get there within 15
#   epochs, tiny steps at the end so the last epochs settle instead of wandering; batch 128
#   (half as many steps as batch 64, each cheaper on the CPU);
# - **a little weight decay** (1e-4): with BatchNorm it keeps the weights' scale, and so the
#   effective step size, from drifting;
# - **test the average, not the last step**: an exponential moving average of the weights and
#   BatchNorm statistics (decay 0.999 per step, a horizon of about two epochs) is what gets
#   evaluated. Each SGD step still jitters the weights; their average does not, and "held over
#   the last epochs" is a statement about exactly that jitter. The average starts from the
#   random initialisation, so its first few epochs score low — by design, not by accident.
#
# Targets, asserted by the last cell on a full run: **< 8,000 parameters, ≤ 15 epochs, every
# one of the last 3 epochs ≥ 99.40 % on the full 10,000-image test set, and fewer
# multiply-accumulates per image than block 2's model (869,760).** `04_seeds` repeats this
# block for other seeds. Each epoch's time is in the Result (not a target here: it depends on
# the machine and its load).

# %% tags=["parameters"]
model_name = "Model_3"
epochs = 15
batch_size = 128
lr = 0.3           # peak learning rate of the one-cycle schedule
seed = 1
device = "auto"     # auto: cuda, then mps, then cpu
train_limit = None  # None: all 60,000 training images; a small int for smoke runs
test_limit = None   # None: all 10,000 test images
rotation = 7.0      # random rotation of each training image, ± degrees
dropout = 0.0
weight_decay = 1e-4
ema_decay = 0.999  # test the moving average of the weights; 0: the weights themselves
torch_compile = "auto"  # "auto": on the CPU if a C++ compiler is found; True; False
out_dir = "reports"

# %%
import torch

from lib import plots
from lib.models import MODELS
from lib.run import Run, check_targets, result_table, summarize
from lib.summary import count_params, macs_per_image, rf_table, show
from lib.train import ema_of, evaluate, fit, mnist_batches, one_cycle

run = Run("03_final", globals())
run.info()

# %% [markdown]
# ## Data
# The training images are rotated by up to ±`rotation`° each, on the device, in whole
# batches; the test set is the real 10,000-image MNIST test split, never augmented.

# %%
train, test = mnist_batches(batch_size, run.device, train_limit, test_limit, rotation, seed)
plots.data_overview(train, test)

# %% [markdown]
# ## Model
# Layer by layer, then the receptive field computed from the layers
# (`rf_out = rf_in + (k − 1)·jump_in`, `jump_out = jump_in·stride`): 27 px after the global
# average pool, the whole digit. The 5×5 windows of stride 2 start at pixels 0, 2, …, 22, so
# the image's last row and column are never seen; the line after the table says how much of
# the test set's ink is there.

# %%
model = MODELS[model_name](dropout=dropout).to(run.device, memory_format=torch.channels_last)
params, macs = count_params(model), macs_per_image(model)
show(model, model_name)
first = rf_table(model).iloc[0]
seen = (first.size_out - 1) * first.stride + first.kernel  # rows (and columns) the windows cover
ink = test.x[..., seen:, :].sum() + test.x[..., :seen, seen:].sum()
print(f"The first conv's windows cover the first {seen} rows and columns of the 28; the rest "
      f"holds {100 * ink / test.x.sum():.3f} % of the test images' ink.")

# %% [markdown]
# ## Training
# Train accuracy is the live model's (with augmentation); test figures are the moving average's.

# %%
optimizer, scheduler = one_cycle(model, lr, epochs, len(train), weight_decay)
ema = ema_of(model, ema_decay) if ema_decay else None
history = fit(model, train, test, epochs, optimizer, scheduler, per_batch=True, ema=ema,
              compile=run.compile)

# %%
plots.curves(history, model_name)

# %%
_, _, preds = evaluate(model if ema is None else ema, test, keep_predictions=True)
plots.misclassified(test.x, test.y, preds)
plots.confusion(test.y, preds)

# %% [markdown]
# ## Result
# Generated from this run's metrics (also written to `<out_dir>/03_final.metrics.json`).

# %%
result = summarize(history)
targets = {"params_below": 8000, "max_epochs": 15, "min_last3_at_least": 99.40,
           "macs_below": 869760}
checks = [
    (f"parameters {params:,} < 8,000", params < 8000),
    (f"epochs {epochs} <= 15", epochs <= 15),
    (f"each of the last 3 epochs >= 99.40 % (min {result['min_last3']:.2f} %)",
     result["min_last3"] >= 99.40),
    (f"MACs per image {macs:,} < 869,760 (block 2)", macs < 869760),
]
run.save_metrics(model=model_name, params=params, macs=macs, test_size=len(test.y), target=targets,
                 target_met=all(ok for _, ok in checks), **result, history=history)
result_table(run, model_name, params, result, len(test.y))

# %% [markdown]
# ## Analysis
# Generated from this run:

# %%
lrs = [row["lr"] for row in history]
print(f"- Targets: {'all met' if all(ok for _, ok in checks) else 'MISSED'}; {params:,} parameters, "
      f"the last 3 epochs at worst {result['min_last3']:.2f} %, the last 5 at worst "
      f"{result['min_last5']:.2f} %; first epoch at 99.40 % or above: "
      f"{result['first_epoch_ge_99_40'] or 'none'}.")
print(f"- The learning rate at the start of the last 3 epochs: "
      f"{', '.join(f'{x:.4f}' for x in lrs[-3:])} (peak {lr}); the last 5 epochs "
      f"spread over {result['spread_last5']:.2f} points.")
print(f"- Final epoch: train {result['final_train_acc']:.2f} % vs test {result['final_test_acc']:.2f} %.")
print(f"- Cost: {macs:,} MACs per image, {100 * (1 - macs / 869760):.0f} % fewer than block 2's "
      f"model; an epoch ({len(train.y):,} training images{', the moving average' if ema else ''}, "
      f"{len(test.y):,} test images) took {result['median_epoch_seconds']:.1f} s here (median), "
      f"on {run.info()['device']}.")

# %% [markdown]
# Downsampling with the first conv fits what MNIST looks like: strokes are wide enough to be
# found by a 5×5 window every second pixel, and the depth after it does the combining at a
# quarter of the price, on a map too small for the elementwise work around the convs to
# dominate. The high peak does the
# learning early, and the long anneal is what block 2 was missing: by the last epochs each
# step is a small fraction of the peak. The moving average removes what jitter is left, so
# the last epochs agree with each other instead of wandering. The
# mistakes that remain are in the grid above, and the confusion matrix shows which pairs of
# digits they fall between: this is where a next step (not taken here) would look.
#
# One seed proves little: `04_seeds` repeats this block for seeds 1, 2 and 3.

# %% [markdown]
# ## Target check
# Asserted on a full run (all data, 15 epochs); on a smoke run the cell says it is not asserted.

# %%
check_targets(run, checks)
