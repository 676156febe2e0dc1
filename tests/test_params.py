"""Parameter validation: one clear line naming the parameter, its value and what is allowed."""
import pytest

from lib.params import ParameterError, check_params, pick_params

GOOD = dict(model_name="Model_3", epochs=15, batch_size=128, lr=0.05, seed=1, device="auto",
            train_limit=None, test_limit=None, rotation=7.0, dropout=0.0, torch_compile="auto",
            out_dir="reports")


def test_defaults_pass_and_only_known_names_are_picked():
    assert check_params(dict(GOOD)) == GOOD
    assert pick_params({**GOOD, "torch": object(), "_": 1}) == GOOD


@pytest.mark.parametrize("name, value, message", [
    ("epochs", 0, "parameter epochs=0 is invalid; allowed: an integer >= 1 and <= 1000"),
    ("epochs", 2.5, "parameter epochs=2.5 is invalid; allowed: an integer"),
    ("epochs", "3", "parameter epochs='3' is invalid"),
    ("epochs", True, "parameter epochs=True is invalid"),
    ("lr", 0, "parameter lr=0 is invalid; allowed: a number > 0 and <= 10"),
    ("lr", -0.1, "parameter lr=-0.1 is invalid"),
    ("lr", "fast", "parameter lr='fast' is invalid"),
    ("batch_size", -1, "parameter batch_size=-1 is invalid; allowed: an integer >= 1"),
    ("train_limit", 0, "parameter train_limit=0 is invalid; allowed: an integer >= 1 and <= 60000"),
    ("train_limit", 70_000, "parameter train_limit=70000 is invalid"),
    ("test_limit", 10_001, "parameter test_limit=10001 is invalid; allowed: an integer >= 1 and <= 10000"),
    ("model_name", "Model_9", "parameter model_name='Model_9' is unknown; allowed: Model_1, Model_2, Model_3"),
    ("device", "tpu", "parameter device='tpu' is not available here; allowed: auto, cpu"),
    ("rotation", 200.0, "parameter rotation=200.0 is invalid"),
    ("shift", 15.0, "parameter shift=15.0 is invalid; allowed: a number >= 0 and <= 14"),
    ("dropout", 1.0, "parameter dropout=1.0 is invalid"),
    ("torch_compile", "yes", "parameter torch_compile='yes' is invalid; allowed: 'auto', True, False"),
    ("torch_compile", 1, "parameter torch_compile=1 is invalid"),
    ("anneal_epochs", 0, "parameter anneal_epochs=0 is invalid; allowed: an integer >= 1 and <= 1000"),
    ("label_smoothing", 0.6, "parameter label_smoothing=0.6 is invalid; allowed: a number >= 0 and <= 0.5"),
])
def test_bad_values_are_one_line_errors(name, value, message):
    with pytest.raises(ParameterError) as e:
        check_params({**GOOD, name: value})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_seeds_must_be_a_list_of_integers():
    check_params({"seeds": [1, 2, 3], "anneal_epochs": None, "train_limit": None})
    for bad in ([], 3, [1, "2"]):
        with pytest.raises(ParameterError, match="parameter seeds="):
            check_params({"seeds": bad})
