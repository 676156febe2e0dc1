"""What the study notebooks show (lib/evidence.py), from a study's record: only runs of today's
code count, comparisons are paired by seed, and where there is nothing to show a line says why."""
import json

import pandas as pd
import pytest

from conftest import REPO
from lib import evidence
from lib.study import inputs_hash, load
from test_study import TINY, tiny_study


def history(worst, final=None):
    """Six epochs whose last five have `worst` as their minimum."""
    accs = [90.0, worst + 0.05, worst, worst + 0.1, worst + 0.02, final if final is not None else worst + 0.03]
    return [dict(epoch=e, test_acc=a, train_acc=98.0, test_loss=0.02, seconds=1.0)
            for e, a in enumerate(accs, 1)]


def write_rows(study, values, extra=None):
    """The study's results file: a complete row per (variant, seed) -> min_last5 of `values`,
    fields of `extra[(variant, seed)]` over the defaults."""
    rows = []
    for (variant, seed), value in values.items():
        row = {"variant": variant, "seed": seed, "status": "complete", "min_last5": value,
               "params": study.variants[variant], "inputs_sha256": inputs_hash(study, study.variants[variant]),
               "git_commit": "abcdef1234567", "git_dirty": False, "device": "cpu (x)", "cpu_threads": 1,
               "torch_compile": False, "seconds": 10.0, "model": f"M_{variant}", "n_params": 100, "macs": 1000}
        row.update((extra or {}).get((variant, seed), {}))
        rows.append(row)
    study.results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return study.path


@pytest.fixture
def recorded(tmp_path):
    """A study of three variants on seeds 1-3 and the rows it records."""
    study = load(tiny_study(tmp_path, {"base": "{}", "better": "{value = 99.5}", "gone": "{value = 98.0}"},
                            seeds=(1, 2, 3)))
    return study, lambda values, extra=None: write_rows(study, values, extra)


def test_only_runs_of_todays_code_count_and_the_rest_is_named(recorded):
    study, write = recorded
    toml = write({("base", 1): 99.40, ("base", 2): 99.30, ("base", 3): 99.50,
                  ("better", 1): 99.50, ("better", 2): 99.42, ("better", 3): 99.0, ("gone", 1): 98.0},
                 {("better", 3): {"inputs_sha256": "old"}, ("gone", 1): {"status": "failed"}})
    ev = evidence.of(toml)
    assert sorted(map(tuple, ev.df[["variant", "seed"]].astype(str).values.tolist())) == [
        ("base", "1"), ("base", "2"), ("base", "3"), ("better", "1"), ("better", "2")]
    assert len(ev.stale) == 1 and len(ev.failed) == 1
    assert ev.missing == {"base": 0, "better": 1, "gone": 3}
    assert ev.counts() == ("5 complete runs of today's code, of 9 (1 failed, 4 not run yet, 0 variant(s) "
                           "stopped early); 1 stale runs are left out (below).")
    assert ev.table.loc["better", "paired_seeds"] == 2
    assert list(ev.stale_runs().index) == [("better", 3)]
    assert ev.per_seed().loc["better"].tolist() == ["99.50", "99.42", "–"]
    assert evidence.definition(ev)["configurations of this model"].tolist() == [3, 3, 3]
    text = evidence.recipe_analysis(ev, {"better": "worse", "base_missing": "worse"})
    assert "- better: within the noise — +0.110 points on 2 paired seeds" in text
    assert "- Claim 'better is worse than base': the record says within the noise." in text
    assert "1 variant compared with base" in text and "gone (3 seeds missing)" in text
    assert "1 runs are stale" in text


def test_nothing_recorded_says_so_everywhere(recorded):
    study, write = recorded
    ev = evidence.of(write({}))
    nothing = "Nothing to show: no complete run of today's code in"
    assert ev.table is None and ev.shown().startswith(nothing) and ev.per_seed().startswith(nothing)
    assert repr(ev.shown()) == str(ev.shown())  # a notebook shows the sentence, not a quoted string
    assert evidence.recipe_analysis(ev, {}).startswith(f"- {nothing}")
    assert evidence.sizes(ev) is None and evidence.per_size(None) == "Nothing to show."
    assert evidence.frontier_analysis(ev, None, None, evidence.Note("x")).startswith(f"- {nothing}")
    assert evidence.provenance(ev.df) == "No runs." and ev.stale_runs() == "No stale runs."


def test_an_optional_study_is_a_line_when_absent_or_empty(recorded, tmp_path):
    study, write = recorded
    assert evidence.optional("", "confirm_study") == "Not asked for: confirm_study is empty."
    assert evidence.optional(tmp_path / "absent.toml", "x").startswith("Not run yet:")
    assert evidence.optional(write({}), "x").startswith("Nothing to show")
    assert len(evidence.optional(write({("base", 1): 99.4}), "x").df) == 1


def test_provenance_names_where_runs_came_from(recorded):
    study, write = recorded
    ev = evidence.of(write({("base", 1): 99.4, ("base", 2): 99.5},
                           {("base", 2): {"rekeyed": {"variant": "old_base", "from_commit": "0123456789abc"},
                                            "cpu": "family 25 model 17, ATen AVX512", "cpu_threads": 2}}))
    row = evidence.provenance(ev.df).loc["base"]
    assert row.rekeyed == "from old_base at 0123456789; no"
    assert row.cpus == "family 25 model 17, ATen AVX512; not recorded" and row.threads == "1; 2"
    assert row.commits == "abcdef1234" and not row.dirty and not row.compiled


def test_a_paired_difference_in_words():
    assert evidence.said((2, 0.15, -0.5, 0.8)) == "+0.150 points on 2 paired seeds (95 % interval -0.500 … +0.800)"


def test_the_seeds_notebooks_figures_and_targets():
    runs = [{"seed": 1, "history": history(99.45)}, {"seed": 2, "history": history(99.38, final=99.60)}]
    table = evidence.seed_table(runs)
    assert table.min_last5.tolist() == [99.45, 99.38]
    checks = evidence.seed_checks(table)
    assert [ok for _, ok in checks] == [True, False, False]  # the mean 99.415 < 99.50
    shown = evidence.seeds_shown(table, runs)
    assert shown.loc[2, "margin over 99.40 %"] == "-0.02 points" and shown.loc[2, "final epoch"] == "99.60 %"
    text = evidence.seed_analysis(table)
    assert "1 of 2; the smallest margin is -0.02 points (seed 2)" in text


def test_the_runner_is_shown_beside_a_run_only_where_comparable(recorded):
    """04_seeds sets the seeds study beside its own run: only the baseline's complete runs of
    today's code count, and only where the notebook's parameters are the ones the study ran."""
    study, write = recorded
    toml = write({("base", 1): 99.50, ("base", 2): 99.30, ("better", 1): 99.6, ("better", 2): 99.4},
                 {("base", 2): {"inputs_sha256": "old"}})
    table = pd.DataFrame({"min_last5": [99.45, 99.41]}, index=pd.Index([1, 2], name="seed"))
    notebook = {"seeds": [1, 2], "seed": 3, "value": 99.0, "fail": False, "pause": 0, "started": "",
                "out_dir": "elsewhere", "device": "cuda", "torch_compile": True, "unrelated": 1}
    assert list(evidence.baseline_runs(toml, notebook)) == [1]
    assert evidence.beside_runner(table, toml, {**notebook, "value": 98.5}, True) == \
        "Not shown: not comparable: value=98.5 here, 99.0 in the study."
    assert evidence.beside_runner(table, toml, notebook, False) == "Not shown: not a full run."
    both = evidence.beside_runner(table, toml, notebook, True)
    assert both.loc[1].tolist() == ["99.45 %", "99.50 %"] and both.loc[2].tolist() == ["99.41 %", "–"]
    text = evidence.candidates(toml, [1, 2])
    assert text.startswith("- better (value = 99.5): 2 of 2 seeds; 2 hold 99.40 %; mean of the worst last-5 epoch 99.50 %")
    assert "too few seeds paired with base" in text  # one baseline run of today's code


def test_a_second_float_path_pairs_one_recipe_per_model(recorded):
    """A recipe study runs one model in several variants: only the baseline's runs are that
    model's on its float path, not one row per recipe."""
    study, write = recorded
    values = {(v, s): 99.40 + s / 100 + (0.2 if v == "better" else 0) for v in ("base", "better") for s in (1, 2, 3)}
    ev = evidence.of(write(values, {k: {"model": "Same_100"} for k in values}))
    both = evidence.float_paths(ev, ev)
    assert both.index.tolist() == [("Same_100", 1), ("Same_100", 2), ("Same_100", 3)]
    assert both["first path %"].tolist() == [99.41, 99.42, 99.43] and (both.difference == 0).all()


def test_the_frontier_tables_and_analysis(recorded):
    study, write = recorded
    values = {("base", s): round(99.40 + s / 100, 2) for s in (1, 2, 3)}
    values.update({("better", s): round(99.30 + s / 20, 2) for s in (1, 2, 3)})
    sizes = {"base": {"n_params": 3000, "model": "Frontier_3000"}, "better": {"n_params": 900, "model": "Small_900"}}
    toml = write(values, {k: sizes[k[0]] for k in values})
    ev = evidence.of(toml)
    table = evidence.sizes(ev)
    assert table.model.tolist() == ["Small_900", "Frontier_3000"] and table.held.tolist() == [2, 3]
    shown = evidence.per_size(table)
    assert shown["held 99.40 %"].tolist() == ["2 of 3", "3 of 3"] and shown.parameters.tolist() == ["900", "3,000"]
    both = evidence.float_paths(ev, ev)
    assert (both.difference == 0).all() and len(both) == 6
    assert evidence.float_paths(ev, evidence.Note("Not asked for")) == "Not asked for"
    text = evidence.frontier_analysis(ev, table, table, both, hold_aim=1000)
    assert "2 sizes, 900 to 3,000 parameters, 3 tuning seed(s) each." in text
    assert "Every seed held 99.40 % in each of its last 5 epochs at: Frontier_3000 (3,000)" in text
    assert "At ≤ 1,000 parameters: the best mean is 99.400 % (Small_900, 900): the aim of 99.0 % is met." in text
    assert "holding on all 10 report seeds: not met by the sizes that ran" in text  # 3 seeds, not 10
    assert "On the second float path, Small_900 held on 2 of 3 seeds" in text
    assert "Configurations tried: 3 variants for 2 models" in text


def test_a_layout_of_its_own_stands_beside_the_fixed_recipe_itself(tmp_path):
    """A variant that changes only the model is block 3's recipe on a layout of its own: that
    layout, not the study's baseline, is paired with the fixed-recipe sizes around it; one
    that held on every seed is set against the smallest larger size that holds."""
    toml = tiny_study(tmp_path, {"base": "{}", "other": '{model_name = "Model_1"}',
                                 "both": '{model_name = "Model_1", value = 99.5}'}, seeds=(1, 2, 3))
    (tmp_path / "tiny.py").write_text(TINY.replace("value = 99.0", 'value = 99.0\nmodel_name = "Model_3"'))
    study = load(toml)
    small, big = {"n_params": 900, "model": "Small_900"}, {"n_params": 3000, "model": "Big_3000"}
    values = {("base", s): 99.40 + s / 100 for s in (1, 2, 3)}
    values.update({("other", s): 99.45 for s in (1, 2, 3)})
    values.update({("both", s): 99.35 for s in (1, 2, 3)})
    write_rows(study, values, {k: small if k[0] == "base" else big for k in values})
    ev = evidence.of(toml)
    tuned = evidence.tuned_sizes(evidence.recipes(str(toml)))
    assert tuned.index.tolist() == ["base", "other"] and tuned.configurations.tolist() == [1, 2]
    text = evidence.tuned_analysis(ev, evidence.sizes(ev), tuned)
    assert "Big_3000 (3,000 parameters, " in text and "the best of 2 configurations on the tuning seeds is other" in text
    assert "Against the study's baseline, another layout with block 3's recipe (base): +0.030 points" in text
    assert "The layout with block 3's recipe (other) against the fixed recipe's size below it" in text
    assert text.count("The layout with block 3's recipe") == 3  # base: below and above; other: below
    assert ("Every tuning seed held at 900 parameters. Against the smallest size that holds with block 3's "
            "recipe, Big_3000 (3,000): -0.030 points on 3 paired seeds") in text  # other: none larger holds
    assert text.count("Every tuning seed held") == 1
    # where the best of a size changes the recipe as well as the model, no layout is set beside the curve
    text = evidence.tuned_analysis(ev, evidence.sizes(ev), tuned.rename(index={"other": "both"}))
    assert "the best of 2 configurations on the tuning seeds is both" in text
    assert text.count("The layout with block 3's recipe") == 2


def test_a_recipe_per_size_is_the_best_full_variant_of_each_size_beside_the_fixed_recipe(recorded):
    study, write = recorded
    values = {("base", s): round(99.30 + s / 100, 2) for s in (1, 2, 3)}
    values.update({("better", s): round(99.40 + s / 100, 2) for s in (1, 2, 3)})
    values.update({("gone", s): 99.25 for s in (1, 2, 3)})
    small, big = {"n_params": 900, "model": "Small_900"}, {"n_params": 3000, "model": "Big_3000"}
    toml = write(values, {k: big if k[0] == "gone" else small for k in values})
    found = evidence.recipes(f" {toml} , ")
    assert list(found) == [str(toml)] and evidence.recipes("") == {}
    tuned = evidence.tuned_sizes(found)
    assert tuned.index.tolist() == ["better", "gone"] and tuned.configurations.tolist() == [2, 1]  # per size
    assert tuned.loc["better", "mean"] == pytest.approx(99.42)
    assert evidence.recipes_shown(found).index.get_level_values("study").unique().tolist() == [str(toml)]
    assert "- better: better — +0.100 points on 3 paired seeds" in evidence.recipes_analysis(found)
    text = evidence.tuned_analysis(evidence.of(toml), evidence.sizes(evidence.of(toml)), tuned)
    assert "Small_900 (900 parameters, " in text and "the best of 2 configurations on the tuning seeds is better, held 3 of 3" in text
    assert "Big_3000 (3,000 parameters, " in text and "one configuration on the tuning seeds, gone, held 0 of 3" in text
    assert "Against block 3's recipe on the same layout (base): +0.100 points on 3 paired seeds" in text
    assert "size above it, Big_3000 (3,000): +0.070 points on 3 paired seeds" in text  # base minus gone, paired
    assert "size below it, Small_900 (900)" in text  # the same study stands in for the fixed-recipe curve
    assert "At ≤ 1,000 parameters, either curve: the best mean is 99.420 % (Small_900, 900): the aim of 99.0 % is met." in text
    values.update({("gone", s): 99.50 for s in (1, 2, 3)})  # another layout is now the best
    write(values, {k: big if k[0] == "gone" else small for k in values})
    text = evidence.tuned_analysis(evidence.of(toml), None, evidence.tuned_sizes(evidence.recipes(str(toml))))
    assert "Against the study's baseline, another layout with block 3's recipe (base): +0.180 points" in text
    write({("base", 1): 99.3, ("better", 1): 99.9}, {k: small for k in [("base", 1), ("better", 1)]})
    assert evidence.tuned_sizes(evidence.recipes(str(toml))) is None  # no variant ran every seed
    assert evidence.tuned_analysis(evidence.of(toml), None, None) == "- No recipe per size has run every tuning seed yet."
    missing = evidence.recipes(str(toml.with_name("absent.toml")))
    assert "does not exist" in evidence.recipes_shown(missing) and "does not exist" in evidence.recipes_analysis(missing)


def test_reading_a_studys_record_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, lib.evidence, lib.study; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
