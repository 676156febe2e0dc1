"""A notebook's Run: parameters checked first, metrics JSON with the agreed keys, targets."""
import json
from pathlib import Path

import pytest
import torch

from lib.params import ParameterError
from lib.paths import STAGING_ENV
from lib.run import Run, check_targets, cpu_name, summarize
from lib.train import resolve_compile

HISTORY = [dict(epoch=e, lr=0.1, train_loss=0.1, train_acc=99.0, test_loss=0.02, test_acc=a, seconds=1.0)
           for e, a in enumerate([98.0, 99.41, 99.5, 99.38, 99.45, 99.47, 99.42], 1)]


def test_summarize_computes_the_result_figures():
    s = summarize(HISTORY)
    assert (s["best_test_acc"], s["best_epoch"]) == (99.5, 3)
    assert s["min_last3"] == 99.42 and s["min_last5"] == 99.38
    assert s["first_epoch_ge_99_40"] == 2 and s["epochs"] == 7


def test_metrics_json_has_the_agreed_keys(tmp_path):
    run = Run("nb", {"epochs": 7, "seed": 1, "device": "cpu", "out_dir": str(tmp_path), "other": 1})
    path = run.save_metrics(model="Model_3", params=7944, epochs=7, test_size=10000,
                            target={"min_last3_at_least": 99.4}, target_met=True, history=HISTORY)
    m = json.loads(path.read_text())
    for key in ("notebook", "model", "params", "epochs", "seed", "device", "device_name", "torch", "git_commit",
                "wall_seconds", "test_size", "target", "target_met", "history"):
        assert key in m, key
    assert m["params"] == 7944 and m["seed"] == 1
    assert m["device"] == f"cpu ({cpu_name()})" and m["device_name"] == cpu_name()
    assert m["parameters"] == {"epochs": 7, "seed": 1, "device": "cpu", "out_dir": str(tmp_path)}
    assert path == tmp_path / "nb.metrics.json"


def test_cpu_name_is_the_model_name():
    name = cpu_name()
    assert name and name != "unknown CPU"
    if Path("/proc/cpuinfo").exists():
        assert f": {name}\n" in Path("/proc/cpuinfo").read_text()


def test_run_info_shows_the_report_folder_and_the_cpu_while_writing_to_staging(tmp_path, monkeypatch,
                                                                               capsys):
    staging = tmp_path / "reports" / ".staging" / "nb"  # what lib.pipeline sets
    monkeypatch.setenv(STAGING_ENV, str(staging))
    run = Run("nb", {"epochs": 1, "seed": 3, "lr": 0.1, "device": "cpu", "out_dir": "reports"})
    table = run.info().table()["this run"]
    assert table["report folder"] == "reports" and table["seed"] == 3
    assert table["device"] == f"cpu ({cpu_name()})"
    assert run.info().parameters_table().to_dict("records") == [{"epochs": 1, "lr": 0.1, "seed": 3,
                                                                 "device": "cpu"}]
    run.info()._ipython_display_()  # what the notebook shows: tables, not the dict
    shown = capsys.readouterr().out
    assert "report folder" in shown and cpu_name() in shown and "{" not in shown
    path = run.save_metrics(model="Model_3", history=HISTORY)
    assert path == staging / "nb.metrics.json"
    assert ".staging" not in path.read_text() and cpu_name() in path.read_text()


def test_a_bad_parameter_stops_the_run_before_anything_else():
    with pytest.raises(ParameterError, match="parameter lr=0 is invalid"):
        Run("nb", {"lr": 0, "out_dir": "/nonexistent"})


def test_torch_compile_is_resolved_for_the_device(monkeypatch):
    assert Run("nb", {"torch_compile": False, "device": "cpu"}).compile is False
    monkeypatch.setenv("CXX", "")
    monkeypatch.setattr("shutil.which", lambda name: None)  # no C++ compiler on this machine
    assert Run("nb", {"torch_compile": "auto", "device": "cpu"}).compile is False
    with pytest.raises(ParameterError, match=r"parameter torch_compile=True is not possible on cpu: "
                                             r"no C\+\+ compiler found .*; allowed here: 'auto', False"):
        Run("nb", {"torch_compile": True, "device": "cpu"})


def test_auto_compiles_on_the_cpu_but_not_on_a_gpu(monkeypatch):
    monkeypatch.setattr("lib.train.compile_support", lambda device: (True, ""))
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_compile("auto", cpu) is True
    assert resolve_compile("auto", gpu) is False  # measured slower than eager there
    assert resolve_compile(True, gpu) is True and resolve_compile(False, cpu) is False


def test_targets_are_checked_only_on_full_runs_and_a_miss_is_reported_not_raised(capsys, monkeypatch):
    full = Run("nb", {"epochs": 15, "train_limit": None, "test_limit": None, "device": "cpu"})
    smoke = Run("nb", {"epochs": 1, "train_limit": 100, "test_limit": None, "device": "cpu"})
    checks = [("fine", True), ("min of last 3 >= 99.40", False)]
    check_targets(smoke, checks)
    out = capsys.readouterr().out
    assert "MISS  min of last 3" in out and "NOT checked" in out and "MISSED" not in out
    check_targets(full, checks)  # no exception: a miss is a result
    assert "TARGETS MISSED: min of last 3 >= 99.40" in capsys.readouterr().out
    check_targets(full, checks[:1])
    assert "All targets met." in capsys.readouterr().out
    monkeypatch.setenv("CHECK_TARGETS_ON_ANY_RUN", "1")  # the test-only switch: a tiny run counts
    check_targets(smoke, checks)
    assert smoke.full and "TARGETS MISSED" in capsys.readouterr().out
