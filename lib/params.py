"""Validation of a notebook's parameters: one clear line per mistake."""
from lib.models import MODELS
from lib.train import available_devices


class ParameterError(ValueError):
    pass


def _number(name, value, kind, low, high=None, low_open=False):
    ok_type = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float:
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    bounds = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
    allowed = f"{'an integer' if kind is int else 'a number'} {bounds}"
    if not ok_type or (value <= low if low_open else value < low) or (high is not None and value > high):
        raise ParameterError(f"parameter {name}={value!r} is invalid; allowed: {allowed}")


NAMES = ("model_name", "epochs", "batch_size", "lr", "seed", "seeds", "device", "train_limit",
         "test_limit", "rotation", "shift", "dropout", "weight_decay", "ema_decay", "muon_lr", "bn_recompute",
         "label_smoothing", "anneal_epochs", "torch_compile", "out_dir")


def pick_params(namespace):
    """The known parameters found in a namespace (a notebook's `globals()`), in NAMES order."""
    return {name: namespace[name] for name in NAMES if name in namespace}


def check_params(p):
    """Check the parameters a notebook knows about (a dict, e.g. from `globals()`).

    Raises ParameterError naming the parameter, its value and what is allowed.
    """
    rules = {
        "epochs": (int, 1, 1000), "batch_size": (int, 1, 60_000), "seed": (int, 0, 2**32 - 1),
        "train_limit": (int, 1, 60_000), "test_limit": (int, 1, 10_000),
        "rotation": (float, 0, 180), "shift": (float, 0, 14), "dropout": (float, 0, 0.9), "weight_decay": (float, 0, 0.1),
        "ema_decay": (float, 0, 0.9999), "muon_lr": (float, 0, 10), "bn_recompute": (int, 0, 60_000),
        "label_smoothing": (float, 0, 0.5), "anneal_epochs": (int, 1, 1000),
    }
    for name, (kind, low, high) in rules.items():
        if name in p and not (name in ("train_limit", "test_limit", "anneal_epochs") and p[name] is None):
            _number(name, p[name], kind, low, high)
    if "lr" in p:
        _number("lr", p["lr"], float, 0, 10, low_open=True)
    if "device" in p:
        allowed = ["auto", *available_devices()]
        if p["device"] not in allowed:
            raise ParameterError(f"parameter device={p['device']!r} is not available here; allowed: "
                                 + ", ".join(allowed))
    tc = p.get("torch_compile", False)
    if not (tc is True or tc is False or tc == "auto"):
        raise ParameterError(f"parameter torch_compile={p['torch_compile']!r} is invalid; "
                             "allowed: 'auto', True, False")
    if "model_name" in p and p["model_name"] not in MODELS:
        raise ParameterError(f"parameter model_name={p['model_name']!r} is unknown; allowed: "
                             + ", ".join(MODELS))
    if "seeds" in p:
        seeds = p["seeds"]
        if not (isinstance(seeds, (list, tuple)) and seeds):
            raise ParameterError(f"parameter seeds={seeds!r} is invalid; allowed: a non-empty list of integers")
        for s in seeds:
            _number("seeds", s, int, 0, 2**32 - 1)
    return p
