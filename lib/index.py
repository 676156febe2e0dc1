"""The reports index, generated from the `*.metrics.json` files of a reports folder:
`README.md` (for GitHub), `index.html` (for a browser, offline) and `test_accuracy.png`."""
import html
import json
import statistics
from itertools import groupby
from pathlib import Path

import matplotlib
import pandas as pd
import seaborn as sns

from lib.paths import REPO
from lib.run import summarize
from lib.targets import LINE

matplotlib.use("Agg")
START, END = "<!-- results:start -->", "<!-- results:end -->"


def load_metrics(folder):
    """{stem: metrics dict} for every readable metrics file; a damaged one is a clear error."""
    found = {}
    for path in sorted(Path(folder).glob("*.metrics.json")):
        try:
            found[path.name.removesuffix(".metrics.json")] = json.loads(path.read_text())
        except ValueError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); rerun its notebook") from None
    return found


def runs_of(m):
    """[(seed, history)] of a metrics record: one run, or the seeds study's several."""
    return [(r["seed"], r["history"]) for r in m["runs"]] if "runs" in m else [(m["seed"], m["history"])]


def verdict(m):
    """What a report's Target check said: "yes", "MISSED", or "not checked" (smoke run)."""
    if not m.get("full_run", True):
        return "not checked (smoke run)"
    return "yes" if m["target_met"] else "MISSED"


def seed_list(seeds):
    """Seeds as a short text, three or more consecutive ones as "first–last" ([1, ..., 10, 42]
    -> "1–10, 42"), so a ten-seed study fits a table cell."""
    runs = [[s for _, s in run] for _, run in groupby(enumerate(seeds), lambda p: p[1] - p[0])]
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) >= 3 else ", ".join(map(str, r)) for r in runs)


def tuned(rows, limits=(1000, 1700, 2000)):
    """The frontier's recipes made for a size, in a few words: the smallest size whose every
    tuning seed holds LINE and the best mean at each of `limits` parameters."""
    name = lambda r: f"{r['model']}{'' if r['variant'] == r['model'] else ', ' + r['variant']}"
    held = sorted((r for r in rows if r["held"] == r["runs"]), key=lambda r: r["params"])
    text = (f"; with a recipe or layout made for the size ({len(rows)} sizes, tuning seeds), every seed holds "
            f"{LINE:.2f} % from " + (f"{held[0]['params']:,} params ({name(held[0])}, mean {held[0]['mean']:.2f} %)"
                               if held else "none of them"))
    for limit in limits:
        at = [r for r in rows if r["params"] <= limit]
        best = max(at, key=lambda r: r["mean"]) if at else None
        text += (f"; the best mean at ≤ {limit:,} params: " + (
            f"{best['mean']:.2f} % ({name(best)}, {best['params']:,})" if best else "none measured"))
    return text


def result(m):
    """What a notebook's run came to, in one cell: a block's worst of its last 5 epochs; the
    seeds study as a distribution over seeds; a study notebook as what its record holds."""
    if "sizes" in m:  # a frontier: accuracy against size
        sizes = sorted(m["sizes"], key=lambda r: r["params"])
        held = [r for r in sizes if r["held"] == r["runs"]]
        confirmed = sorted(m.get("confirmed", []), key=lambda r: r["params"])
        return (f"study {m['study']}: {m['n_runs']} of {m['grid']} runs recorded; {len(sizes)} sizes"
                + (f", {sizes[0]['params']:,}–{sizes[-1]['params']:,} params" if sizes else "")
                + f"; the smallest whose every tuning seed holds {LINE:.2f} %: "
                + (f"{held[0]['params']:,} params ({held[0]['model']}, mean {held[0]['mean']:.2f} %)"
                   if held else "none")
                + ("; on the report seeds: " + ", ".join(f"{r['model']} held on {r['held']} of {r['runs']} "
                                                         f"(mean {r['mean']:.2f} %)" for r in confirmed)
                   if confirmed else "")
                + (tuned(m["tuned"]) if m.get("tuned") else ""))
    if "study" in m:
        return (f"study {m['study']}: {m['n_runs']} of {m['grid']} runs recorded"
                + (f", {m['stale']} stale" if m.get("stale") else "")
                + "; per variant mean, worst and the difference to the baseline, paired")
    worst = {seed: summarize(h)["min_last5"] for seed, h in runs_of(m)}
    if len(worst) == 1:
        return f"{next(iter(worst.values())):.2f} %"
    values = list(worst.values())
    low = min(worst, key=worst.get)
    held = sum(v >= LINE for v in values)
    return (f"{held}/{len(values)} seeds hold {LINE:.2f} %; mean {statistics.mean(values):.2f} "
            f"± {statistics.stdev(values):.2f} %, worst {worst[low]:.2f} % (seed {low})")


def table(metrics):
    """One row per notebook: the model, its size, what its run came to (`result`), whether its
    targets were met, its times and device."""
    rows = []
    for stem, m in metrics.items():
        study = "study" in m
        rows.append({
            "notebook": stem, "model": "–" if study else m["model"],
            "params": "–" if study else f"{m['params']:,}",
            "epochs": "–" if study else m["epochs"],
            "worst of the last 5 epochs (over seeds: held, mean ± sd, worst)": result(m),
            "target met": "–" if study else verdict(m),
            "epoch (median)": "–" if study else
            f"{statistics.median(row['seconds'] for _, h in runs_of(m) for row in h):.1f} s",
            "wall time": f"{m['wall_seconds'] / 60:.1f} min",
            "device": "–" if study else m["device"] + (", compiled" if m.get("torch_compile") else ""),
            "seed": "–" if study else seed_list([seed for seed, _ in runs_of(m)]),
        })
    return pd.DataFrame(rows)


def markdown(df, prefix=""):
    """The table in GitHub Markdown: each notebook links to its .ipynb (GitHub renders it) and
    its .html; `prefix` is the reports folder as seen from the Markdown file."""
    df = df.assign(notebook=[f"[{s}]({prefix}{s}.ipynb) · [html]({prefix}{s}.html)"
                             for s in df["notebook"]],
                   **{"target met": df["target met"].replace("MISSED", "**MISSED**")})
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>MNIST under 8,000 parameters: reports</title>
<style>
body {{ font-family: system-ui, sans-serif; color: #222; max-width: 80em; margin: 2em auto;
       padding: 0 1em; line-height: 1.45; }}
table {{ border-collapse: collapse; font-size: 0.92em; margin: 1em 0; }}
th, td {{ padding: 0.4em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ background: #f3f3f3; }}
td {{ white-space: nowrap; }}
.device {{ white-space: normal; display: inline-block; min-width: 9em; }}
.result {{ white-space: normal; display: inline-block; min-width: 16em; max-width: 24em; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
.missed {{ color: #b00; }}
</style>
</head>
<body>
<h1>MNIST under 8,000 parameters: reports</h1>
<p>Generated by <code>make reports</code> from the <code>*.metrics.json</code> files in this
folder; do not edit by hand. Each notebook links to its code-free report (HTML) and to the
executed notebook (<code>.ipynb</code>, for Jupyter). A block's result is the worst of its
last 5 epochs' test accuracies; the seeds study's is the distribution of that figure over its
seeds (how many hold {line:.2f} %, their mean ± sd, the worst seed); the recipe notebook reads a
study's record. "target met" is the notebook's own Target check. The device column names the CPU or GPU: on
another one the last digits differ.</p>
{table}
<p>Code: commit {commits}.</p>{gaps}{others}
<img src="test_accuracy.png" alt="Test accuracy per epoch of every notebook">
</body>
</html>
"""


def html_page(df, commits, others=(), gaps=""):
    """The index as a self-contained HTML page (no scripts, nothing fetched: opens offline);
    `others`: the subfolders with reports and an index of their own (`subindexes`)."""
    df = df.map(lambda v: html.escape(str(v)))
    df["notebook"] = [f'<a href="{s}.html">{s}</a> · <a href="{s}.ipynb">ipynb</a>'
                      for s in df["notebook"]]
    df["target met"] = df["target met"].replace("MISSED", '<strong class="missed">MISSED</strong>')
    df["device"] = [f'<span class="device">{d}</span>' for d in df["device"]]  # may wrap
    result = next(c for c in df.columns if c.startswith("worst of the last 5"))
    df[result] = [f'<span class="result">{r}</span>' for r in df[result]]
    links = ", ".join(f'<a href="{html.escape(d)}/index.html">{html.escape(d)}/</a>' for d in others)
    return PAGE.format(line=LINE, table=df.to_html(index=False, escape=False, border=0),
                       commits=html.escape(commits),
                       gaps=f"\n<p>{gaps}</p>" if gaps else "",
                       others=f"\n<p>{OTHERS}: {links}.</p>" if others else "")


OTHERS = "Reports made on other machines, each folder with its own index"


def gaps(folder, metrics):
    """What `folder`'s index adds below its table: the notebooks with no report there, and the
    folder's log files."""
    absent = sorted({p.stem for p in (REPO / "notebooks").glob("[0-9]*.py")} - set(metrics))
    return absent, sorted(p.name for p in Path(folder).glob("*.log"))


def gaps_line(absent, logs, link):
    """`gaps` in one line, each log written by `link(name)`; "" when there are neither."""
    return " ".join(([f"No report here of: {', '.join(absent)}."] if absent else [])
                    + ([f"Logs: {', '.join(map(link, logs))}."] if logs else []))


def subindexes(folder):
    """The subfolders of `folder` that hold reports and their own index (reports/gpu/)."""
    return [d.name for d in sorted(Path(folder).iterdir())
            if d.is_dir() and (d / "README.md").exists() and any(d.glob("*.metrics.json"))]


def accuracy_figure(metrics, path):
    """Test accuracy per epoch of every notebook that trains (and every seed) on one plot."""
    metrics = {stem: m for stem, m in metrics.items() if "study" not in m}
    df = pd.DataFrame([dict(run=f"{stem} (seed {seed})" if "runs" in m else stem, **row)
                       for stem, m in metrics.items() for seed, h in runs_of(m) for row in h])
    sizes = {m.get("test_size") for m in metrics.values()}
    low = df.test_acc.min() - 0.1  # zoom on the top unless nothing gets there (a smoke run)
    ax = sns.lineplot(df, x="epoch", y="test_acc", hue="run", marker="o")
    ax.axhline(LINE, color="red", ls="--", lw=1)
    ax.set(ylabel="test accuracy %", ylim=(max(97.5, low) if df.test_acc.max() > 98 else low, 100),
           title="Test accuracy per epoch" + (f" ({sizes.pop():,} test images)"
                                             if len(sizes) == 1 and None not in sizes else ""))
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), title=None, frameon=False)
    ax.figure.set_size_inches(10, 4.5)
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=110)
    matplotlib.pyplot.close(ax.figure)


def write_index(folder):
    """Write `<folder>/README.md`, `index.html` and `test_accuracy.png`; for `reports/`, the
    top README's table too. Returns the notebooks whose targets were missed."""
    folder = Path(folder)
    metrics = load_metrics(folder)
    if not metrics:
        raise ValueError(f"no *.metrics.json in {folder}: run `make reports` first")
    accuracy_figure(metrics, folder / "test_accuracy.png")
    df = table(metrics)
    commits = ", ".join(sorted({m["git_commit"][:10] + (" (dirty)" if m.get("git_dirty") else "")
                                for m in metrics.values()}))
    others, absent, logs = subindexes(folder), *gaps(folder, metrics)
    md_gaps = gaps_line(absent, logs, lambda n: f"[{n}]({n})")
    (folder / "README.md").write_text(
        "# Reports\n\nGenerated by `make reports` from the `*.metrics.json` files in this folder; "
        "do not edit by hand.\nEach notebook name links to the executed notebook (`.ipynb`, "
        "rendered by GitHub), `html` to its code-free report;\n[index.html](index.html) is this "
        "page for a browser (it opens offline).\nA block's result is the worst of its last 5 epochs' "
        "test accuracies; the seeds study's is the distribution of that figure over its seeds.\n"
        "The device column names the CPU or GPU: on another one the last digits differ.\n\n"
        f"{markdown(df)}\n\nCode: commit {commits}.\n\n" + (f"{md_gaps}\n\n" if md_gaps else "")
        + (f"{OTHERS}: " + ", ".join(f"[{d}/]({d}/README.md)" for d in others) + ".\n\n" if others else "")
        + "![test accuracy](test_accuracy.png)\n")
    html_gaps = gaps_line(absent, logs, lambda n: f'<a href="{html.escape(n)}">{html.escape(n)}</a>')
    (folder / "index.html").write_text(html_page(df, commits, others, html_gaps))
    if folder.resolve() == (REPO / "reports").resolve():
        readme = REPO / "README.md"
        text = readme.read_text()
        linked = markdown(df, prefix="reports/")
        if START in text and END in text:
            head, rest = text.split(START, 1)
            readme.write_text(f"{head}{START}\n{linked}\n{END}{rest.split(END, 1)[1]}")
    print(f"index: {folder / 'README.md'}, {folder / 'index.html'} ({len(metrics)} notebooks)")
    return [stem for stem, m in metrics.items() if verdict(m) == "MISSED"]  # missed a target
