"""Models and their summaries: the seed reproduction layer by layer, RF computed from layers."""
import pytest
import torch

from lib.models import FRONTIER, MODELS, Model_1
from lib.summary import count_params, layer_table, macs_per_image, rf_table

# The seed repo's Block 2 summary: (layer type, output shape, parameters), every layer.
SEED_TABLE = []
for c, h, p in [(32, 26, 288), (8, 26, 256), (10, 24, 720)]:
    SEED_TABLE += [("Conv2d", (c, h, h), p), ("ReLU", (c, h, h), 0),
                   ("BatchNorm2d", (c, h, h), 2 * c), ("Dropout2d", (c, h, h), 0)]
SEED_TABLE.append(("MaxPool2d", (10, 12, 12), 0))
for c, h, p in [(16, 12, 1440), (10, 12, 160), (10, 10, 900), (16, 8, 1440), (16, 6, 2304)]:
    SEED_TABLE += [("Conv2d", (c, h, h), p), ("ReLU", (c, h, h), 0),
                   ("BatchNorm2d", (c, h, h), 2 * c), ("Dropout2d", (c, h, h), 0)]
SEED_TABLE += [("AvgPool2d", (16, 1, 1), 0), ("Conv2d", (10, 1, 1), 160)]


def test_seed_model_matches_the_seed_summary_layer_for_layer():
    model = Model_1()
    assert count_params(model) == 7904
    table = layer_table(model)
    assert list(zip(table.type, table.output, table.params)) == SEED_TABLE
    assert table.params.sum() == 7904


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_is_under_8000_params_and_outputs_log_probabilities(name):
    model = MODELS[name]().eval()
    assert count_params(model) < 8000
    out = model(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10)
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-5)


def test_receptive_field_is_computed_from_the_layers():
    rf = rf_table(Model_1())
    assert rf.rf.tolist() == [3, 3, 5, 6, 10, 10, 14, 18, 22, 32, 32]
    assert rf.jump.tolist() == [1, 1, 1, 2, 2, 2, 2, 2, 2, 12, 12]
    # the global average pool of Model_3 is adaptive: its window is the 3x3 map it receives
    rf3 = rf_table(MODELS["Model_3"]())
    assert rf3.set_index("layer").loc["gap", "kernel"] == 3
    assert rf3.rf.iloc[-1] == 30


def test_final_model_sees_the_full_image_twice_then_works_on_11x11_and_costs_less_than_block_2s():
    model = MODELS["Model_3"]()
    rf = rf_table(model)
    assert rf.type.tolist() == ["Conv2d"] * 2 + ["MaxPool2d", "BlurPool"] + ["Conv2d"] * 4 \
        + ["AdaptiveAvgPool2d", "Conv2d"]
    assert (rf.kernel[0], rf.stride[0], rf.size_out[0]) == (5, 1, 24)  # every pixel seen
    assert (rf.kernel[1], rf.stride[1], rf.size_out[1]) == (3, 1, 22)
    assert (rf.stride[2], rf.size_out[2], rf.size_out[3]) == (1, 21, 11)  # max at stride 1, then blur
    assert rf.rf.tolist() == [5, 7, 8, 10, 14, 18, 22, 26, 30, 30]
    assert count_params(model) == 7912
    # convs: weights x output pixels; plus one per BatchNorm parameter and the 1x1 head
    # (the blur is a functional conv, which torchinfo does not count: 8 x 9 x 121 = 8,712)
    convs = 200 * 576 + 576 * 484 + 1152 * 81 + 2304 * 49 + 2304 * 25 + 1152 * 9 + 80
    assert macs_per_image(model) == convs + 2 * (8 + 8 + 16 + 16 + 16 + 8) == 668_384
    assert macs_per_image(model) + 8 * 9 * 121 < macs_per_image(MODELS["Model_2"]())


def test_block_3_before_the_margin_search_differs_from_model_3_in_the_pool_alone():
    """Model_3_maxpool (the recipe study's baseline) is Model_3 with a plain 2x2 max-pool:
    for one seed both draw the same weights, so the study compares the pools, not the draws."""
    before = MODELS["Model_3_maxpool"]
    assert rf_table(before()).rf.tolist() == [5, 7, 8, 12, 16, 20, 24, 28, 28]
    assert isinstance(before().pool, torch.nn.MaxPool2d) and before().pool.stride == 2
    torch.manual_seed(0)
    a = MODELS["Model_3"]().state_dict()
    torch.manual_seed(0)
    b = before().state_dict()
    assert set(a) - set(b) == {"pool.1.kernel"} and not set(b) - set(a)
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_macs_of_the_seed_model():
    # sum over convs of weights x output pixels, plus torchinfo's one per BatchNorm parameter
    convs = 288 * 676 + 256 * 676 + 720 * 576 + 1440 * 144 + 160 * 144 + 900 * 100 \
        + 1440 * 64 + 2304 * 36 + 160
    assert macs_per_image(Model_1()) == convs + 236


def test_candidates_change_what_their_names_say():
    shared = MODELS["Model_3_shared_conv"]()
    assert shared.block2[1][0].weight is shared.block2[2][0].weight  # one weight, used twice
    assert count_params(shared) == count_params(MODELS["Model_3_maxpool"]()) + 32  # + one BatchNorm
    convs = layer_table(shared).query("type == 'Conv2d'")
    assert convs.output.tolist()[2:5] == [(16, 9, 9), (16, 9, 9), (16, 7, 7)]
    assert count_params(MODELS["Model_3_dw_head"]()) == 7912 + 72
    assert count_params(MODELS["Model_3_maxavg_head"]()) == 7912 + 80
    assert layer_table(MODELS["Model_3_separable"]()).type.tolist().count("Conv2d") == 9
    assert count_params(MODELS["Model_3_maxpool"]()) == 7912
    assert layer_table(MODELS["Model_3"]()).set_index("layer").loc["pool.1", "output"] == (8, 11, 11)


def test_blurpool_keeps_a_flat_image_flat_and_halves_the_map():
    from lib.models import BlurPool

    out = BlurPool(3)(torch.full((1, 3, 21, 21), 2.0))
    assert out.shape == (1, 3, 11, 11) and torch.allclose(out, torch.full_like(out, 2.0))


@pytest.mark.parametrize("name", sorted(FRONTIER))
def test_a_frontier_model_has_the_parameters_its_name_and_docstring_say(name):
    model = FRONTIER[name]()
    stated = int(name.rsplit("_", 1)[1])
    assert count_params(model) == stated
    assert f"{stated:,} parameters" in FRONTIER[name].__doc__
    assert rf_table(model).rf.iloc[-1] >= 28, "the receptive field covers the 28-px image"


def test_the_course_repos_layout_is_rebuilt_layer_for_layer():
    table = layer_table(FRONTIER["Woolly_3762"](dropout=0.0))
    convs = table[table.type == "Conv2d"]
    assert [o[0] for o in convs.output] == [4, 4, 4, 8, 8, 8, 8, 8, 8, 10]
    assert [o[1] for o in convs.output] == [28, 28, 28, 14, 14, 14, 7, 7, 7, 1]
