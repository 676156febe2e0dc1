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
# # Block 3 — see the digit at full resolution, go deep on a small map, one-cycle schedule
#
# ## Target
# Block 2's Analysis: the lean layout is smaller and cheaper than the seed model, but with a
# learning rate that never decays inside 15 epochs the test accuracy keeps moving from epoch
# to epoch, which is the opposite of "held over the last epochs". Its layer table also shows
# where the compute goes: the 8 → 12 conv at 24×24, *before* the pool, does over half of the
# model's multiply-accumulates. The changes, aimed at both:
# - **see the digit at full resolution, then go deep on a small map** (Model_3): one 5×5
#   conv of 8 channels on the 28×28 image reaches the receptive field block 2 reached with
#   two 3×3 convs (5 pixels: the width of a stroke with its edges) at about a fifth of their
#   multiply-accumulates; one 3×3 conv of 8 channels (not 12) after it reaches RF 7 — stroke
#   ends and crossings — still at full resolution. Together these two convs cost about 70 %
#   of block 2's full-resolution convs. Four 3×3 convs of 16, 16, 16 and 8 channels work on
#   the 11×11 map, up to RF 26 before the global average pool; the parameters saved at full
#   resolution go into that depth (still under 8,000, still no dropout). In the recipe study
#   (`05_recipe`: each alternative paired with block 3's model of then on the tuning seeds
#   101–108), downsampling inside the first conv (stride 2, no full-resolution map) trails
#   it and one 5×5 conv alone matches it, both within the noise: Model_3 keeps both convs
#   because no alternative tried beats them, not because the record shows that each one pays;
# - **an anti-aliased pool**: the maximum of every 2×2 window is taken at every pixel, then
#   blurred (a fixed 3×3 binomial filter) before every second pixel is kept (Zhang, 2019). A
#   plain 2×2 max-pool keeps one pixel in four, so a digit moved by one pixel can give a
#   different 11×11 map; the blur makes the map change smoothly with the shift instead. No
#   parameters, about 1 % more multiply-accumulates;
# - **a one-cycle schedule**: a 3-epoch warm-up from `lr/10` to a high peak `lr`, then a
#   cosine anneal to `lr/1000`, stepped every batch; big steps early to get there within 15
#   epochs, tiny steps at the end so the last epochs settle instead of wandering; batch 128;
# - **Muon for the conv weights** (peak lr `muon_lr` = 0.2 on the same schedule; SGD with
#   momentum for BatchNorm and the head): each step's update of a conv weight is
#   orthogonalised, so all of its directions move at the same pace instead of the few
#   largest ones: more learning per step, for a model that is still learning at epoch 15;
# - **a little weight decay** (1e-4): with BatchNorm it keeps the weights' scale, and so the
#   effective step size, from drifting (in the recipe study 5e-4 does worse; no decay is
#   within the noise);
# - **test the average, not the last step**: an exponential moving average of the weights
#   (decay 0.999 per step, a horizon of about two epochs) is what gets evaluated. Each step
#   still jitters the weights; their average does not, and "held over the last epochs" is a
#   statement about exactly that jitter (in the recipe study, testing the weights themselves
#   does clearly worse; a horizon of one epoch, 0.998, is within the noise). The average
#   starts from the random initialisation, so its first few epochs score low — by design;
# - **BatchNorm statistics measured for the averaged weights**: the average's running
#   statistics were collected under the weights of each step, not under the average. Before
#   each test one pass over 10,000 un-rotated training images measures them for the weights
#   that are tested (`bn_recompute`, as SWA does).
#
# The pool, Muon and the recomputed statistics came from a search for a margin (the recipe
# study, `studies/recipe.toml`): seven ideas and four combinations, each paired with block
# 3's model of then (`Model_3_maxpool`: a plain max-pool, SGD for every weight, the averaged
# statistics) on the tuning seeds. None of the seven alone beat it by more than the noise; the three together
# (`blurpool_muon_bn`) did. Picked after those seeds were seen, which flatters it, it then
# ran on the report seeds 1–10, which nobody tuned on, beside the model of then, and held
# there too: `04_seeds` shows both, paired by seed. So block 3 adopted it.
#
# Targets, checked by the last cell on a full run: **< 8,000 parameters, ≤ 15 epochs, every
# one of the last 5 epochs ≥ 99.40 % on the full 10,000-image test set, and fewer
# multiply-accumulates per image than block 2's model (869,760).** One seed proves little:
# `04_seeds` trains this block for ten seeds and asks for a margin. Each epoch's time is in
# the Result (not a target here: it depends on the machine and its load).

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
shift = 0.0         # then a random shift of it along each axis, ± pixels
dropout = 0.0
weight_decay = 1e-4
ema_decay = 0.999  # test the moving average of the weights; 0: the weights themselves
muon_lr = 0.2      # peak lr of Muon for the conv weights (SGD for the rest); 0: SGD for all
bn_recompute = 10000  # BatchNorm statistics recomputed on this many training images before each test; 0: not
label_smoothing = 0.0  # the share of each target spread over all classes in the training loss
anneal_epochs = None  # the one-cycle schedule ends after this many epochs, then holds its last lr; None: all
torch_compile = "auto"  # "auto": on the CPU if a C++ compiler is found; True; False
out_dir = "reports"

# %%
from lib import plots, targets
from lib.run import Run, check_targets, result_table, summarize
from lib.summary import count_params, macs_per_image, show
from lib.train import evaluate, fit, mnist_batches, recipe

run = Run("03_final", globals())
run.info()

# %% [markdown]
# ## Data
# The training images are rotated by up to ±`rotation`° each (and shifted by up to ±`shift`
# pixels along each axis), on the device, in whole batches; the test set is the real
# 10,000-image MNIST test split, never augmented.

# %%
train, test = mnist_batches(batch_size, run.device, train_limit, test_limit, rotation, seed, shift=shift)
plots.data_overview(train, test)

# %% [markdown]
# ## Model
# Built with its recipe from the parameters above (`recipe`: the optimiser, its schedule and
# the moving average, as the Target says). Layer by layer, then the receptive field computed from the layers
# (`rf_out = rf_in + (k − 1)·jump_in`, `jump_out = jump_in·stride`): 30 px after the global
# average pool, the whole 28-px image. The blur of the pool is a fixed conv, which the
# multiply-accumulate count below leaves out (8,712 per image).

# %%
model, optimizer, scheduler, ema = recipe(run.params, len(train), run.device)
params, macs = count_params(model), macs_per_image(model)
show(model, model_name)

# %% [markdown]
# ## Training
# Train accuracy is the live model's (with augmentation); test figures are the moving average's.

# %%
history = fit(model, train, test, epochs, optimizer, scheduler, per_batch=True, ema=ema,
              compile=run.compile, bn_recompute=bn_recompute, label_smoothing=label_smoothing)

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
target = {"params_below": targets.PARAMS_BELOW, "max_epochs": targets.EPOCHS,
          "min_last5_at_least": targets.LINE, "macs_below": 869760}
checks = [
    (f"parameters {params:,} < {targets.PARAMS_BELOW:,}", params < targets.PARAMS_BELOW),
    (f"epochs {epochs} <= {targets.EPOCHS}", epochs <= targets.EPOCHS),
    (f"each of the last 5 epochs >= {targets.LINE:.2f} % (worst {result['min_last5']:.2f} %)",
     result["min_last5"] >= targets.LINE),
    (f"MACs per image {macs:,} < 869,760 (block 2)", macs < 869760),
]
run.save_metrics(model=model_name, params=params, macs=macs, test_size=len(test.y), target=target,
                 target_met=all(ok for _, ok in checks), **result, history=history)
result_table(run, model_name, params, result, len(test.y))

# %% [markdown]
# ## Analysis
# Generated from this run:

# %%
lrs = [row["lr"] for row in history]
print(f"- Targets: {'all met' if all(ok for _, ok in checks) else 'MISSED'}; {params:,} parameters, "
      f"the last 3 epochs at worst {result['min_last3']:.2f} %, the last 5 at worst "
      f"{result['min_last5']:.2f} %; first epoch at {targets.LINE:.2f} % or above: "
      f"{result['first_epoch_ge_99_40'] or 'none'}.")
print(f"- The learning rate at the start of each of the last 5 epochs: "
      f"{', '.join(f'{x:.4f}' for x in lrs[-5:])} (peak {lr}); the last 5 epochs "
      f"spread over {result['spread_last5']:.2f} points.")
print(f"- Final epoch: train {result['final_train_acc']:.2f} % vs test {result['final_test_acc']:.2f} %.")
print(f"- Cost: {macs:,} MACs per image, {100 * (1 - macs / 869760):.0f} % fewer than block 2's "
      f"model; an epoch ({len(train.y):,} training images{', the moving average' if ema else ''}, "
      f"{len(test.y):,} test images) took {result['median_epoch_seconds']:.1f} s here (median), "
      f"on {run.info()['device']}.")

# %% [markdown]
# What each change bought is in the lines above: the two full-resolution convs and the pool
# see every pixel and hand an 11×11 map to the depth, which does the combining at a fraction of the
# price of full resolution. The high peak does the learning early, and the long anneal is
# what block 2 was missing: by the last epochs each step is a small fraction of the peak. The
# moving average, tested with statistics measured for it, removes what jitter is left, so the
# last epochs agree with each other instead of wandering. What the pool, Muon and the
# measured statistics add over block 3 of then is a paired comparison, not one run: `05_recipe`
# (tuning seeds) and `04_seeds` (report seeds). The mistakes that remain are in the grid above, and the confusion
# matrix shows which pairs of digits they fall between: this is where a next step (not taken
# here) would look.
#
# One seed proves little, and one machine's last digits prove little more: `04_seeds` trains
# this block for seeds 1 to 10 and asks every one of them to hold, with a margin.

# %% [markdown]
# ## Target check
# Checked on a full run (all data, 15 epochs): PASS or MISS per target, then the verdict (a miss
# is recorded in the metrics and marked in the index; the notebook still finishes). On a smoke
# run the cell shows the targets but does not check them.

# %%
check_targets(run, checks)
