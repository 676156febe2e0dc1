"""The reports index: README.md for GitHub, index.html for a browser, both from the metrics."""
import json
import re

from lib.index import seed_list, write_index

HISTORY = [dict(epoch=e, lr=0.1, train_loss=0.1, train_acc=99.0, test_loss=0.02, test_acc=a, seconds=2.0)
           for e, a in enumerate([99.1, 99.42, 99.45], 1)]


def record(**extra):
    return {"model": "Model_3", "params": 7944, "epochs": 3, "target_met": True, "wall_seconds": 60,
            "device": "cpu (AMD EPYC 7B13)", "device_name": "AMD EPYC 7B13", "torch_compile": True,
            "git_commit": "0123456789abcdef", "git_dirty": False, **extra}


def reports(tmp_path):
    """A reports folder with a block and a seeds study, as `make reports` leaves it."""
    (tmp_path / "03_final.metrics.json").write_text(json.dumps(record(seed=1, history=HISTORY)))
    (tmp_path / "04_seeds.metrics.json").write_text(json.dumps(record(
        target_met=False, runs=[{"seed": 1, "history": HISTORY}, {"seed": 2, "history": HISTORY}])))
    write_index(tmp_path)
    return tmp_path


def test_index_html_links_every_report_and_shows_the_figure(tmp_path):
    page = (reports(tmp_path) / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', page)
    for stem in ("03_final", "04_seeds"):
        assert f"{stem}.html" in links and f"{stem}.ipynb" in links, stem
    assert '<img src="test_accuracy.png"' in page and (tmp_path / "test_accuracy.png").exists()
    assert "AMD EPYC 7B13" in page and ">MISSED</strong>" in page  # device model; a missed target


def test_index_html_opens_offline(tmp_path):
    page = (reports(tmp_path) / "index.html").read_text()
    assert "<script" not in page and "http" not in page  # nothing fetched, every link relative
    assert all((tmp_path / src).exists() for src in re.findall(r'src="([^"]+)"', page))


def test_markdown_index_links_the_ipynb_beside_the_html(tmp_path):
    md = (reports(tmp_path) / "README.md").read_text()
    assert "[03_final](03_final.ipynb) · [html](03_final.html)" in md
    assert "[04_seeds](04_seeds.ipynb) · [html](04_seeds.html)" in md
    assert "| **MISSED** |" in md and "cpu (AMD EPYC 7B13), compiled" in md
    assert "| 0/2 seeds hold 99.40 %; mean 99.10 ± 0.00 %, worst 99.10 % (seed 1) |" in md
    assert "[index.html](index.html)" in md and "![test accuracy](test_accuracy.png)" in md


def test_seed_list_writes_runs_of_consecutive_seeds_as_ranges():
    assert seed_list(list(range(1, 11))) == "1–10"
    assert seed_list([1, 2, 3, 7, 11, 12, 2026]) == "1–3, 7, 11, 12, 2026"
    assert seed_list([5]) == "5"


def test_a_frontier_row_names_the_smallest_size_every_seed_holds_and_the_report_seeds():
    from lib.index import result

    row = lambda model, params, held, runs, mean: dict(model=model, params=params, held=held, runs=runs, mean=mean)
    m = dict(study="frontier", n_runs=24, grid=24,
             sizes=[row("Big", 7912, 8, 8, 99.53), row("Small", 931, 0, 8, 98.77), row("Mid", 3592, 8, 8, 99.46),
                    row("Wide", 4530, 6, 8, 99.42)],
             confirmed=[row("Below", 2516, 3, 10, 99.38), row("Mid", 3592, 10, 10, 99.47)])
    text = result(m)
    assert "3 sizes" not in text and "4 sizes, 931–7,912 params" in text
    assert "every tuning seed holds 99.40 %: 3,592 params (Mid, mean 99.46 %)" in text
    assert text.endswith("; on the report seeds: Below held on 3 of 10 (mean 99.38 %), "
                         "Mid held on 10 of 10 (mean 99.47 %)")
    none = result({**m, "sizes": [row("Small", 931, 0, 8, 98.77)], "confirmed": []})
    assert none.endswith("every tuning seed holds 99.40 %: none") and "report seeds" not in none
    tuned = result({**m, "tuned": [{**row("Tied", 1936, 2, 8, 99.31), "variant": "batch_64"},
                                   {**row("Layout", 2800, 6, 8, 99.42), "variant": "Layout"}]})
    assert tuned.endswith("Mid held on 10 of 10 (mean 99.47 %); with a recipe or layout made for the size "
                          "(2 sizes, tuning seeds), every seed holds 99.40 % from none of them; the best mean at "
                          "≤ 1,000 params: none measured; the best mean at ≤ 1,700 params: none measured; the best mean at "
                          "≤ 2,000 params: 99.31 % (Tied, batch_64, 1,936)")
    tuned = result({**m, "tuned": [{**row("Tied", 1936, 8, 8, 99.43), "variant": "batch_64"},
                                   {**row("Layout", 980, 6, 8, 99.12), "variant": "Layout"},
                                   {**row("Narrow", 1699, 1, 8, 99.05), "variant": "Narrow"},
                                   {**row("Wider", 2800, 8, 8, 99.50), "variant": "Wider"}]})
    assert tuned.endswith("every seed holds 99.40 % from 1,936 params (Tied, batch_64, mean 99.43 %); the best mean "
                          "at ≤ 1,000 params: 99.12 % (Layout, 980); the best mean at ≤ 1,700 params: 99.12 % (Layout, 980); "
                          "the best mean at ≤ 2,000 params: 99.43 % "
                          "(Tied, batch_64, 1,936)")  # a layout of its own: no variant named
    assert "recipe per size" not in text


def test_an_index_names_the_notebooks_it_lacks_and_links_its_logs(tmp_path):
    (tmp_path / "03_final.metrics.json").write_text(json.dumps(record(seed=1, history=HISTORY)))
    (tmp_path / "04_seeds.unfinished.log").write_text("--- seed 1\n")
    write_index(tmp_path)
    readme, page = (tmp_path / "README.md").read_text(), (tmp_path / "index.html").read_text()
    assert "No report here of: 01_seed_model, 02_lean, 04_seeds, 05_recipe, 06_frontier." in readme
    assert "[04_seeds.unfinished.log](04_seeds.unfinished.log)" in readme
    assert '<a href="04_seeds.unfinished.log">04_seeds.unfinished.log</a>' in page
