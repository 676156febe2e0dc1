"""Figures (seaborn/matplotlib): samples, curves, mistakes, confusion matrix, studies."""
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from lib.data import MEAN, STD
from lib.targets import LINE, MEAN_LINE
from lib.train import rotate

sns.set_theme(style="whitegrid", context="notebook")


def show(fig, alt):
    """Display a finished figure once and release it (one output per figure, in any runner);
    `alt` describes it for a reader who cannot see it (the HTML report's alt text)."""
    from IPython.display import display
    display(fig, metadata={"image/png": {"alt": alt}})
    plt.close(fig)


def image_grid(images, titles, ncols=10, title=None):
    """Show up to len(images) 28x28 images (tensors, any scale) with a caption each."""
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.1, nrows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t in zip(axes.flat, images, titles):
        ax.imshow(img.squeeze().cpu(), cmap="gray_r")
        ax.set_title(t, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig  # the public functions below show it


def data_overview(train, test, n=40):
    """Print sizes, pixel statistics and label counts of both splits; show `n` training images
    as the model sees them (augmented)."""
    print(f"train {tuple(train.x.shape)}  test {tuple(test.x.shape)}")
    print(f"train pixels (0..1): mean {train.x.mean():.4f}  std {train.x.std():.4f}  "
          f"-> normalised with mean {MEAN}, std {STD}")
    print("train label counts", torch.bincount(train.y, minlength=10).tolist())
    print("test  label counts", torch.bincount(test.y, minlength=10).tolist())
    x, y = train.x[:n], train.y[:n]  # a private generator: the training stream stays untouched
    if train.rotation or train.shift:
        x, _ = rotate(x, train.rotation, torch.Generator(device=x.device).manual_seed(0), train.shift)
    shifted = (f", shift ±{train.shift} px", f" and shifted by up to {train.shift} pixels") if train.shift else ("", "")
    show(image_grid(x.cpu(), [str(int(l)) for l in y],
                    title=f"Training images as the model sees them (random rotation ±{train.rotation}°{shifted[0]})"),
         f"{len(y)} training digits, randomly rotated by up to {train.rotation} degrees{shifted[1]}, each titled with its label")


def rotation_check(images, max_degrees, n=10):
    """Our batched rotation next to torchvision's PIL `rotate` at the same angles, per digit."""
    import torchvision.transforms.functional as TF
    x = images[:n].cpu()
    ours, angles = rotate(x, max_degrees, torch.Generator().manual_seed(0))
    pil = [TF.to_tensor(TF.rotate(TF.to_pil_image(img), float(a))) for img, a in zip(x, angles)]
    titles = [f"{float(a):+.1f}°" for a in angles]
    show(image_grid([*x, *ours, *pil], ["original"] * n + [f"ours {t}" for t in titles]
                    + [f"PIL {t}" for t in titles], ncols=n,
                    title="Rows: original · batched affine_grid/grid_sample · torchvision PIL rotate"),
         f"{n} digits in three rows: the originals, rotated by our batched rotation, and rotated "
         "by torchvision's PIL rotate at the same angles; the two rotated rows look alike")


def curves(history, label=None):
    """Train/test loss and accuracy per epoch, from a `fit` history."""
    df = pd.DataFrame(history)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    long = df.melt("epoch", ["train_loss", "test_loss"], var_name="split", value_name="loss")
    sns.lineplot(long, x="epoch", y="loss", hue="split", marker="o", ax=ax1)
    long = df.melt("epoch", ["train_acc", "test_acc"], var_name="split", value_name="accuracy %")
    sns.lineplot(long, x="epoch", y="accuracy %", hue="split", marker="o", ax=ax2)
    ax2.axhline(LINE, color="red", ls="--", lw=1, label=f"{LINE:.2f} %")
    ax2.set_ylim(max(95.0, df[["train_acc", "test_acc"]].min().min() - 0.2), 100)
    ax2.legend()
    if label:
        fig.suptitle(label)
    fig.tight_layout()
    show(fig, f"Two line charts per epoch: train and test loss (left), train and test accuracy with "
              f"the {LINE:.2f} % line (right); test accuracy ends at {df.test_acc.iloc[-1]:.2f} %")


def misclassified(images, labels, preds, n=30):
    """The first `n` test images the model gets wrong, titled 'true→predicted'."""
    wrong = (preds.cpu() != labels.cpu()).nonzero().flatten()[:n]
    show(image_grid(images[wrong].cpu(), [f"{int(labels[i])}→{int(preds[i])}" for i in wrong],
                    title=f"Misclassified test images (first {len(wrong)} of "
                          f"{int((preds.cpu() != labels.cpu()).sum())})"),
         f"{len(wrong)} misclassified test digits, each titled true digit → predicted digit")


def confusion(labels, preds):
    """Confusion matrix (rows: true digit, columns: predicted), off-diagonal counts shown."""
    m = torch.zeros(10, 10, dtype=torch.long)
    m.index_put_((labels.cpu(), preds.cpu()), torch.ones(len(labels), dtype=torch.long), accumulate=True)
    fig, ax = plt.subplots(figsize=(6, 5))
    sns.heatmap(m.numpy(), annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                annot_kws={"fontsize": 7})
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (test set)")
    fig.tight_layout()
    off = m.clone().fill_diagonal_(0)
    t, p = divmod(int(off.argmax()), 10)
    show(fig, f"Confusion matrix of the test set, true digit by row, predicted by column; "
              f"{int(off.sum())} errors, the most common {t} read as {p} ({int(off.max())} times)")


def seed_curves(runs):
    """Test accuracy per epoch, one line per seed."""
    df = pd.DataFrame([dict(seed=r["seed"], **h) for r in runs for h in r["history"]])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.lineplot(df, x="epoch", y="test_acc", hue="seed", palette="tab10", marker="o", ax=ax)
    ax.axhline(LINE, color="red", ls="--", lw=1)
    ax.set(ylabel="test accuracy %", ylim=(max(97.0, df.test_acc.min() - 0.2), 100))
    fig.tight_layout()
    show(fig, f"Line chart: test accuracy per epoch, one line per seed ({len(runs)} seeds), "
              f"with the {LINE:.2f} % line")


def seed_ranges(runs, last=5, line=LINE, mean_line=MEAN_LINE):
    """Each seed's test accuracy over its last `last` epochs: the range as a bar, each epoch
    as a dot, against the `line` every epoch must reach; the dotted line is the mean of the
    seeds' worst epochs, to be compared with `mean_line`."""
    df = pd.DataFrame([dict(seed=str(r["seed"]), **h) for r in runs for h in r["history"][-last:]])
    worst = df.groupby("seed", sort=False).test_acc.agg(["min", "max"])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.stripplot(df, x="seed", y="test_acc", color="navy", size=4, jitter=False, ax=ax, zorder=3)
    ax.vlines(range(len(worst)), worst["min"], worst["max"], color="lightsteelblue", lw=8)
    ax.axhline(line, color="red", ls="--", lw=1, label=f"{line:.2f} %: every epoch")
    ax.axhline(mean_line, color="green", ls="--", lw=1, label=f"{mean_line:.2f} %: the mean's target")
    ax.axhline(worst["min"].mean(), color="gray", ls=":", lw=1.5,
               label=f"mean of the worst epochs: {worst['min'].mean():.2f} %")
    low = min(line, df.test_acc.min())
    ax.set(ylabel="test accuracy %", ylim=(low - 0.1, max(df.test_acc.max(), mean_line) + 0.1),
           title=f"Last {last} epochs of each seed")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    held = int((worst["min"] >= line).sum())
    show(fig, f"For each of {len(worst)} seeds, the test accuracy of its last {last} epochs as dots "
              f"on a bar from worst to best, against the {line:.2f} % line: {held} of {len(worst)} "
              f"seeds stay at or above it; the mean of the worst epochs is {worst['min'].mean():.2f} %")


def study_points(df, table, baseline, line=LINE):
    """A study's evidence in one figure: every seed's worst last-5 epoch per variant (a dot
    each; a seed's dots share a colour across variants), each variant's mean with its 95 %
    interval (black), the baseline's mean (dotted) and the `line` every run must reach."""
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(table) + 1.6))
    sns.stripplot(df, y="variant", x="min_last5", hue=df.seed.astype(str), palette="tab10", size=5,
                  jitter=0.15, ax=ax, zorder=2, alpha=0.8)
    ys = range(len(table))
    ax.errorbar(table["mean"], ys, xerr=[table["mean"] - table.ci_low, table.ci_high - table["mean"]],
                fmt="D", color="black", ms=5, capsize=3, zorder=3, label="mean, 95 % interval")
    ax.axvline(table.loc[baseline, "mean"], color="gray", ls=":", lw=1.5, label=f"{baseline}'s mean")
    ax.axvline(line, color="red", ls="--", lw=1, label=f"{line:.2f} %")
    ax.set(xlabel="worst test accuracy % over the last 5 epochs", ylabel=None,
           title="Every run of the study (one dot per seed)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="seed / marks", frameon=False)
    fig.tight_layout()
    show(fig, f"For each of {len(table)} variants, one dot per seed: the worst test accuracy of its "
              f"last 5 epochs, with the variant's mean and 95 % interval; {baseline}'s mean as a "
              f"dotted line, {line:.2f} % dashed")


def frontier(df, table, published=None, tuned=None, line=LINE):
    """Accuracy against size: every run's worst last-5 epoch (a dot per seed), each size's
    mean with its 95 % interval, the `line`; left against parameters, right against MACs
    per image (both log scale). `published`: one-run figures from elsewhere (params, macs,
    accuracy, label), drawn as open marks: a best epoch, not a worst of five. `tuned`: a
    size table of recipes made for a size (`evidence.tuned_sizes`), a second curve."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    sizes = table.set_index("model")
    interval = lambda t: [t["mean"] - t.ci_low, t.ci_high - t["mean"]]
    for ax, x, label in ((axes[0], "params", "trainable parameters"), (axes[1], "macs", "multiply-accumulates per image")):
        ax.scatter(df[x if x == "macs" else "n_params"], df.min_last5, s=14, color="steelblue", alpha=0.6,
                   label="one run (seed): worst of its last 5 epochs", zorder=2)
        ax.errorbar(sizes[x], sizes["mean"], yerr=interval(sizes), fmt="D", color="black", ms=5,
                    capsize=3, zorder=3, label="block 3's recipe at every size: mean over seeds, 95 % interval")
        if tuned is not None and len(tuned):
            ax.errorbar(tuned[x], tuned["mean"], yerr=interval(tuned), fmt="o", color="seagreen", ms=6, capsize=3,
                        zorder=4, label="a recipe or layout made for the size: the best of its configurations "
                                        "(flattered by the pick)")
        if published is not None and len(published):
            ax.scatter(published[x], published.accuracy, marker="s", facecolors="none", edgecolors="darkorange",
                       s=40, zorder=4, label="published: one run, its own epochs (not a worst of 5)")
            for _, p in published.iterrows():
                ax.annotate(p.label, (p[x], p.accuracy), xytext=(4, 4), textcoords="offset points", fontsize=7,
                            color="darkorange")
        ax.axhline(line, color="red", ls="--", lw=1, label=f"{line:.2f} %: every one of the last 5 epochs")
        ax.set(xscale="log", xlabel=label)
    axes[0].set(ylabel="test accuracy %", title="Accuracy against parameters")
    axes[1].set(title="Accuracy against compute")
    axes[1].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    held = sizes[sizes.held == sizes.runs]
    show(fig, f"Worst last-5-epoch test accuracy of every run against the model's parameters (left) and "
              f"MACs per image (right), log scale, for {len(sizes)} sizes from {sizes.params.min():,} to "
              f"{sizes.params.max():,} parameters, with each size's mean and 95 % interval and the "
              f"{line:.2f} % line; sizes whose every run holds it: "
              + (", ".join(f"{p:,}" for p in held.params) or "none")
              + ("" if tuned is None or not len(tuned) else "; with a recipe or layout made for the size: "
                 + ", ".join(f"{r.params:,} mean {r['mean']:.3f} %" for _, r in tuned.iterrows())))
