"""Every model of the project, one class per block: Model_1, Model_2, Model_3.

Sizes in the comments are the output (channels x height x width) and the receptive field
(RF) after the layer; `lib.summary.rf_table` computes the same RF from the layers themselves.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(c_in, c_out, k=3, padding=0, dropout=0.0, order="relu-bn", stride=1):
    """3x3 (or k x k) conv without bias, then ReLU/BatchNorm in `order`, then Dropout2d."""
    layers = [nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False)]
    post = [nn.ReLU(), nn.BatchNorm2d(c_out)]
    layers += post if order == "relu-bn" else post[::-1]
    if dropout:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


class BlurPool(nn.Module):
    """Anti-aliased subsampling (Zhang, "Making convolutional networks shift-invariant again", 2019): a
    fixed 3x3 binomial blur ([1, 2, 1] x [1, 2, 1] / 16, reflected borders), then every second pixel."""

    kernel_size, stride, padding = 3, 2, 1  # for the receptive-field table

    def __init__(self, channels):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16).expand(channels, 1, 3, 3).clone())

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.kernel, stride=2, groups=x.shape[1])


class Model_1(nn.Module):
    """The seed repo's Block 2 network, reproduced exactly: 7,904 parameters. ReLU ->
    BatchNorm -> Dropout2d after every conv but the last; no biases."""

    def __init__(self, dropout=0.01):
        super().__init__()
        d = dropout
        self.block1 = nn.Sequential(
            conv(1, 32, dropout=d),              # 32x26x26  RF 3
            conv(32, 8, k=1, dropout=d),         # 8x26x26   RF 3
            conv(8, 10, dropout=d),              # 10x24x24  RF 5
        )
        self.pool = nn.MaxPool2d(2)              # 10x12x12  RF 6
        self.block2 = nn.Sequential(
            conv(10, 16, padding=1, dropout=d),  # 16x12x12  RF 10
            conv(16, 10, k=1, dropout=d),        # 10x12x12  RF 10
            conv(10, 10, dropout=d),             # 10x10x10  RF 14
            conv(10, 16, dropout=d),             # 16x8x8    RF 18
            conv(16, 16, dropout=d),             # 16x6x6    RF 22
        )
        self.gap = nn.AvgPool2d(6)               # 16x1x1    RF 32
        self.head = nn.Conv2d(16, 10, 1, bias=False)  # 10x1x1

    def forward(self, x):
        x = self.block2(self.pool(self.block1(x)))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


class Model_2(nn.Module):
    """Lean: channels where the receptive field is large, not at RF 3; BN before ReLU;
    one max-pool at RF 5; global average pooling into a 1x1 classifier. 6,552 parameters."""

    def __init__(self, dropout=0.0, width=12):
        super().__init__()
        d, o, w = dropout, "bn-relu", width
        self.block1 = nn.Sequential(
            conv(1, 8, dropout=d, order=o),      # 8x26x26   RF 3
            conv(8, 12, dropout=d, order=o),     # 12x24x24  RF 5
        )
        self.pool = nn.MaxPool2d(2)              # 12x12x12  RF 6
        self.block2 = nn.Sequential(
            conv(12, w, dropout=d, order=o),     # w x10x10  RF 10
            conv(w, 16, dropout=d, order=o),     # 16x8x8    RF 14
            conv(16, 16, dropout=d, order=o),    # 16x6x6    RF 18
        )
        self.gap = nn.AdaptiveAvgPool2d(1)       # 16x1x1    RF 28
        self.head = nn.Conv2d(16, 10, 1, bias=False)  # 10x1x1

    def forward(self, x):
        x = self.block2(self.pool(self.block1(x)))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


class Model_3(nn.Module):
    """See the digit at full resolution twice, then go deep on a small map: a 5x5 conv and a
    3x3 conv of 8 channels on the 28x28 image (RF 7), an anti-aliased max-pool to 11x11 (the
    maximum over 2x2 windows at stride 1, then `BlurPool`), then four 3x3 convs on it.
    7,912 parameters, 668,384 MACs per image: 23 % fewer than Model_2 (869,760); the blur
    adds 8,712 that torchinfo does not count (a functional conv)."""

    def __init__(self, dropout=0.0):
        super().__init__()
        d, o = dropout, "bn-relu"
        self.block1 = nn.Sequential(
            conv(1, 8, k=5, dropout=d, order=o),  # 8x24x24   RF 5
            conv(8, 8, dropout=d, order=o),       # 8x22x22   RF 7
        )
        self.pool = nn.Sequential(nn.MaxPool2d(2, stride=1), BlurPool(8))  # 8x21x21, 8x11x11  RF 8, 10
        self.block2 = nn.Sequential(
            conv(8, 16, dropout=d, order=o),     # 16x9x9    RF 14
            conv(16, 16, dropout=d, order=o),    # 16x7x7    RF 18
            conv(16, 16, dropout=d, order=o),    # 16x5x5    RF 22
            conv(16, 8, dropout=d, order=o),     # 8x3x3     RF 26
        )
        self.gap = nn.AdaptiveAvgPool2d(1)       # 8x1x1     RF 30
        self.head = nn.Conv2d(8, 10, 1, bias=False)  # 10x1x1

    def forward(self, x):
        x = self.block2(self.pool(self.block1(x)))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


# --- candidates: variants of Model_3 for the studies, named for what they change. Not blocks: the
# recipe notebook (05_recipe) shows how each did against block 3's model of then, Model_3_maxpool.

class Model_3_maxpool(Model_3):
    """Block 3's model before the search for a margin: Model_3 with a plain 2x2 max-pool (22 -> 11).
    7,912 parameters, 668,384 MACs; the recipe study's baseline, which the other candidates change."""

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        self.pool = nn.MaxPool2d(2)              # 8x11x11   RF 8


class Model_3_stride2(nn.Module):
    """An earlier Model_3: one 5x5 conv of stride 2 turns the 28x28 image into a 12x12 map at once
    (RF 5, no full-resolution map), then four 3x3 convs. 7,944 parameters, 402,304 MACs per image."""

    def __init__(self, dropout=0.0):
        super().__init__()
        d, o = dropout, "bn-relu"
        self.block1 = conv(1, 8, k=5, stride=2, dropout=d, order=o)  # 8x12x12   RF 5
        self.block2 = nn.Sequential(
            conv(8, 16, dropout=d, order=o),     # 16x10x10  RF 9
            conv(16, 16, dropout=d, order=o),    # 16x8x8    RF 13
            conv(16, 16, dropout=d, order=o),    # 16x6x6    RF 17
            conv(16, 12, dropout=d, order=o),    # 12x4x4    RF 21
        )
        self.gap = nn.AdaptiveAvgPool2d(1)       # 12x1x1    RF 27
        self.head = nn.Conv2d(12, 10, 1, bias=False)

    def forward(self, x):
        x = self.block2(self.block1(x))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


class Model_3_one_5x5(nn.Module):
    """An earlier Model_3: one 5x5 conv of 8 channels at full resolution (RF 5), a max-pool to
    12x12, four 3x3 convs ending in 12 channels. 7,944 parameters, 488,704 MACs per image."""

    def __init__(self, dropout=0.0):
        super().__init__()
        d, o = dropout, "bn-relu"
        self.block1 = conv(1, 8, k=5, dropout=d, order=o)  # 8x24x24   RF 5
        self.pool = nn.MaxPool2d(2)              # 8x12x12   RF 6
        self.block2 = nn.Sequential(
            conv(8, 16, dropout=d, order=o),     # 16x10x10  RF 10
            conv(16, 16, dropout=d, order=o),    # 16x8x8    RF 14
            conv(16, 16, dropout=d, order=o),    # 16x6x6    RF 18
            conv(16, 12, dropout=d, order=o),    # 12x4x4    RF 22
        )
        self.gap = nn.AdaptiveAvgPool2d(1)       # 12x1x1    RF 28
        self.head = nn.Conv2d(12, 10, 1, bias=False)

    def forward(self, x):
        x = self.block2(self.pool(self.block1(x)))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


def separable(c_in, c_out, order="bn-relu"):
    """A 3x3 conv split in two: 3x1 (c_in -> c_out), BatchNorm/ReLU, then 1x3 (c_out -> c_out),
    BatchNorm/ReLU: the same 3x3 receptive field for 6 c_out^2 weights instead of 9 c_out^2."""
    return nn.Sequential(conv(c_in, c_out, k=(3, 1), order=order), conv(c_out, c_out, k=(1, 3), order=order))


class Model_3_shared_conv(Model_3_maxpool):
    """Model_3_maxpool with its 16 -> 16 conv of the 7x7 map applied first, padded, on the 9x9 map
    (its own BatchNorm): one weight used twice. 7,944 parameters (+32), 855,040 MACs (+28 %)."""

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        d, o = dropout, "bn-relu"
        shared = conv(16, 16, padding=1, dropout=d, order=o)   # 16x9x9    RF 16
        layers = list(self.block2)                             # then 16x7x7 RF 20 ... RF 28
        layers[1][0].weight = shared[0].weight                 # the same tensor: tied
        self.block2 = nn.Sequential(layers[0], shared, *layers[1:])


class Model_3_dw_head(Model_3_maxpool):
    """Model_3_maxpool, a depthwise 3x3 conv weighing the final 3x3 map for GAP: 7,984 parameters."""

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        self.gap = nn.Conv2d(8, 8, 3, groups=8, bias=False)  # 8x1x1  RF 28


class MaxAvgPool(nn.AdaptiveAvgPool2d):
    """Global max and global average pooling, concatenated: C channels in, 2C out."""

    def __init__(self):
        super().__init__(1)

    def forward(self, x):
        return torch.cat([F.adaptive_max_pool2d(x, 1), super().forward(x)], dim=1)


class Model_3_maxavg_head(Model_3_maxpool):
    """Model_3_maxpool, its head reading each final channel's maximum and average: 7,992 parameters."""

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        self.gap = MaxAvgPool()                        # 16x1x1  RF 28
        self.head = nn.Conv2d(16, 10, 1, bias=False)


class Model_3_separable(Model_3_maxpool):
    """Model_3_maxpool with its two 16 -> 16 convs split into 3x1 + 1x3 pairs (`separable`); the
    weights saved buy width: 18 channels on the small map instead of 16, and 10 (not 8) into
    the head. 7,912 parameters, as Model_3."""

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        d, o = dropout, "bn-relu"
        self.block2 = nn.Sequential(
            conv(8, 18, dropout=d, order=o),      # 18x9x9    RF 12
            separable(18, 18, order=o),           # 18x7x7    RF 16
            separable(18, 18, order=o),           # 18x5x5    RF 20
            conv(18, 10, dropout=d, order=o),     # 10x3x3    RF 24
        )
        self.head = nn.Conv2d(10, 10, 1, bias=False)


# --- the frontier: how small can the network be? (studies/frontier*.toml, 06_frontier). Block 3's
# layout at other widths and in other shapes, and one course repo's layout for comparison. Each
# size a named class: a study row names it.

def dw_separable(c_in, c_out, order="bn-relu"):
    """A depthwise-separable 3x3 conv: one 3x3 filter per input channel (groups = c_in), then
    a 1x1 conv c_in -> c_out, then BatchNorm/ReLU: 9 c_in + c_in c_out weights instead of
    9 c_in c_out. No BatchNorm between the two halves (Xception's choice)."""
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, groups=c_in, bias=False),
                         conv(c_in, c_out, k=1, order=order))


class Frontier(nn.Module):
    """Block 3's layout at widths set by the subclass: `stem` channels in the two full-resolution
    convs, `width` on the 11x11 map, `out` into the classifier; with `depthwise`, the four convs of
    the small map are depthwise-separable (`dw_separable`). RF 30, as Model_3."""

    stem, width, out, depthwise = 8, 16, 8, False

    def __init__(self, dropout=0.0):
        super().__init__()
        d, o, c1, c2, c3 = dropout, "bn-relu", self.stem, self.width, self.out
        small = (lambda a, b: dw_separable(a, b, order=o)) if self.depthwise else \
            (lambda a, b: conv(a, b, dropout=d, order=o))
        self.block1 = nn.Sequential(
            conv(1, c1, k=5, dropout=d, order=o),  # c1x24x24  RF 5
            conv(c1, c1, dropout=d, order=o),      # c1x22x22  RF 7
        )
        self.pool = nn.Sequential(nn.MaxPool2d(2, stride=1), BlurPool(c1))  # c1x21x21, c1x11x11  RF 8, 10
        self.block2 = nn.Sequential(
            small(c1, c2),                       # c2x9x9    RF 14
            small(c2, c2),                       # c2x7x7    RF 18
            small(c2, c2),                       # c2x5x5    RF 22
            small(c2, c3),                       # c3x3x3    RF 26
        )
        self.gap = nn.AdaptiveAvgPool2d(1)       # c3x1x1    RF 30
        self.head = nn.Conv2d(c3, 10, 1, bias=False)  # 10x1x1

    def forward(self, x):
        x = self.block2(self.pool(self.block1(x)))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


class Frontier_4530(Frontier):
    """Block 3's layout, every width three quarters of Model_3's: 6 / 12 / 6. 4,530 parameters."""
    stem, width, out = 6, 12, 6


class Frontier_sep_3592(Frontier):
    """Model_3's full-resolution convs (8 channels); 24 channels on the small map in
    depthwise-separable convs, 16 into the classifier. 3,592 parameters."""
    stem, width, out, depthwise = 8, 24, 16, True


class Frontier_sep_3294(Frontier):
    """Frontier_sep_3592 with 22 channels on the small map, not 24: 3,294 parameters."""
    stem, width, out, depthwise = 8, 22, 16, True


class Frontier_sep_3012(Frontier):
    """Frontier_sep_3592 with 20 channels on the small map, not 24: 3,012 parameters."""
    stem, width, out, depthwise = 8, 20, 16, True


class Frontier_sep_2516(Frontier):
    """6 channels at full resolution, 20 on the small map (depthwise-separable), 12 into the
    classifier. 2,516 parameters."""
    stem, width, out, depthwise = 6, 20, 12, True


class Frontier_sep_2496(Frontier):
    """Frontier_sep_2516's size with Frontier_sep_3592's 8 channels at full resolution: 16 on
    the small map (depthwise-separable), 16 into the classifier. 2,496 parameters."""
    stem, width, out, depthwise = 8, 16, 16, True


class Frontier_sep_1680(Frontier):
    """4 channels at full resolution, 16 on the small map (depthwise-separable), 10 into the
    classifier. 1,680 parameters."""
    stem, width, out, depthwise = 4, 16, 10, True


class Frontier_sep_931(Frontier):
    """3 channels at full resolution, 10 on the small map (depthwise-separable), 8 into the
    classifier. 931 parameters."""
    stem, width, out, depthwise = 3, 10, 8, True


class FrontierShared(Frontier):
    """A `Frontier` (depthwise-separable small map) whose third small conv is its second applied again,
    weights tied, its BatchNorm its own: the depth and RF of the layout for one conv's weights fewer."""
    depthwise = True

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        second, third = self.block2[1], self.block2[2]
        third[0].weight = second[0].weight        # the depthwise 3x3 filters
        third[1][0].weight = second[1][0].weight  # the 1x1 conv


class Frontier_shared_1936(FrontierShared):
    """Frontier_sep_2516's widths (6 / 20 / 12), the third small conv tied to the second: 1,936 parameters."""
    stem, width, out = 6, 20, 12


class Frontier_shared_977(FrontierShared):
    """3 channels at full resolution, 14 on the small map, the third small conv tied to the
    second, 8 into the classifier: 977 parameters."""
    stem, width, out = 3, 14, 8


class Frontier_shared_2800(FrontierShared):
    """Frontier_sep_3592's widths (8 / 24 / 16), the third small conv tied to the second: 2,800 parameters."""
    stem, width, out = 8, 24, 16


class Frontier_shared_2996(FrontierShared):
    """Frontier_shared_2800 with 26 channels on the small map, not 24: 2,996 parameters."""
    stem, width, out = 8, 26, 16


class Frontier_shared_2544(FrontierShared):
    """8 channels at full resolution, 22 on the small map, the third small conv tied to the
    second, 14 into the classifier: 2,544 parameters."""
    stem, width, out = 8, 22, 14


class Frontier_shared_1699(FrontierShared):
    """Frontier_shared_1936 with 17 channels on the small map, not 20: 1,699 parameters."""
    stem, width, out = 6, 17, 12


class Frontier_stem8_1928(FrontierShared):
    """Frontier_shared_1936's budget moved toward full resolution: 8 / 16 / 10, 1,928 parameters."""
    stem, width, out = 8, 16, 10


class Frontier_deep_1976(Frontier_shared_1936):
    """Frontier_shared_1936 with its tied small conv once more, padded, on 7x7: 1,976 parameters."""

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        second, again = self.block2[1], dw_separable(self.width, self.width)
        again[0].weight, again[1][0].weight = second[0].weight, second[1][0].weight
        again[0].padding = (1, 1)                 # 20x7x7  RF 22
        self.block2 = nn.Sequential(*self.block2[:2], again, *self.block2[2:])


class Frontier_map14_1936(Frontier_shared_1936):
    """Frontier_shared_1936 on a larger small map: its full-resolution convs padded (28x28), the pool
    gives 14x14, not 11x11. The same 1,936 parameters, two thirds more multiply-accumulates."""

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        self.block1[0][0].padding, self.block1[1][0].padding = (2, 2), (1, 1)  # 6x28x28 RF 5, 7


class Frontier_map14_1699(Frontier_map14_1936):
    """Frontier_map14_1936's 14x14 small map at Frontier_shared_1699's widths (6 / 17 / 12, the
    third small conv tied to the second): 1,699 parameters."""
    stem, width, out = 6, 17, 12


class Frontier_map14_977(Frontier_map14_1936):
    """Frontier_map14_1936's 14x14 small map at Frontier_shared_977's widths (3 / 14 / 8): 977 parameters."""
    stem, width, out = 3, 14, 8


def scale_free(model):
    """`model` with every BatchNorm's scale fixed at 1 (a buffer, not a parameter), its shift kept:
    a positive scale passes a ReLU (relu(g x + b) = g relu(x + b / g)) to the next conv."""
    for bn in [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]:
        scale = bn.weight.detach().clone()
        del bn.weight
        bn.register_buffer("weight", torch.ones_like(scale))
    return model


class Frontier_free_1932(FrontierShared):
    """Frontier_shared_1936 with BatchNorm's scale (`scale_free`) traded for a 21st channel on the
    small map (6 / 21 / 12, the third small conv tied to the second): 1,932 parameters."""
    stem, width, out = 6, 21, 12

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        scale_free(self)


class Frontier_leaky_1936(Frontier_shared_1936):
    """Frontier_shared_1936 with LeakyReLU (slope 0.2 below zero) for every ReLU, as the
    697-parameter MNIST model of JoshWarn/Parameter-Efficient-MNIST: 1,936 parameters."""

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        for parent in list(self.modules()):
            for name, child in parent.named_children():
                if isinstance(child, nn.ReLU):
                    setattr(parent, name, nn.LeakyReLU(0.2))


class FrontierOneStem(Frontier):
    """A `Frontier` (depthwise-separable small map) with one full-resolution conv, the 5x5 (9 c1^2 +
    2 c1 parameters fewer): the pool gives 12x12, the small convs end on 4x4, RF 30."""
    depthwise = True

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        self.block1 = self.block1[:1]             # c1x24x24  RF 5; pool c1x12x12  RF 6, 8


class Frontier_one_3000(FrontierOneStem):
    """Frontier_sep_3592's widths (8 / 24 / 16) with one full-resolution conv: 3,000 parameters."""
    stem, width, out = 8, 24, 16


class Frontier_one_2702(FrontierOneStem):
    """Frontier_sep_3294's widths (8 / 22 / 16) with one full-resolution conv: 2,702 parameters."""
    stem, width, out = 8, 22, 16


class Frontier_one_2420(FrontierOneStem):
    """Frontier_sep_3012's widths (8 / 20 / 16) with one full-resolution conv: 2,420 parameters."""
    stem, width, out = 8, 20, 16


class Frontier_one_shared_1683(FrontierOneStem, FrontierShared):
    """One full-resolution conv (FrontierOneStem), the third small conv tied to the second
    (FrontierShared), at 6 / 21 / 12: 1,683 parameters."""
    stem, width, out = 6, 21, 12


class Frontier_one_map14_1683(Frontier_one_shared_1683):
    """Frontier_one_shared_1683, its full-resolution conv padded: a 14x14 small map, 1,683 parameters."""

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        self.block1[0][0].padding = (2, 2)        # 6x28x28  RF 5


class Frontier_one_map14_978(Frontier_one_map14_1683):
    """Frontier_one_map14_1683 at 4 / 15 / 7: 978 parameters."""
    stem, width, out = 4, 15, 7


class Frontier_one3_978(FrontierOneStem, FrontierShared):
    """One padded 3x3 conv of 7 channels at full resolution (as the published 997-parameter model,
    JoshWarn/Parameter-Efficient-MNIST), a 14x14 small map at 14 / 8, tied as 977: 978 parameters."""
    stem, width, out = 7, 14, 8

    def __init__(self, dropout=0.0):
        super().__init__(dropout)
        self.block1 = conv(1, self.stem, padding=1, dropout=dropout, order="bn-relu")  # 7x28x28  RF 3


class Frontier_one3_1985(Frontier_one3_978):
    """Frontier_one3_978's layout at 8 / 23 / 16: 1,985 parameters."""
    stem, width, out = 8, 23, 16


class Frontier_one3_2480(Frontier_one3_978):
    """Frontier_one3_978's layout at 8 / 28 / 16: 2,480 parameters."""
    stem, width, out = 8, 28, 16


class Frontier_one3_970(Frontier_one3_978):
    """Frontier_one3_978's layout with 8 channels at full resolution: 8 / 13 / 9, 970 parameters."""
    stem, width, out = 8, 13, 9


class Woolly_3762(nn.Module):
    """The 3,762-parameter layout of a course repo (adilsammar/woolly-of-cv, MNIST, "3762"): padded
    3x3 convs 4-4-4 at 28x28, max-pool, 8-8-8 at 14x14, max-pool, 8-8-8 at 7x7, GAP, 1x1 8 -> 10;
    each conv with a bias, BatchNorm, ReLU, Dropout2d (their 0.01 by default): 3,762 parameters."""

    def __init__(self, dropout=0.01):
        super().__init__()

        def cbr(c_in, c_out):
            layers = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            return nn.Sequential(*layers, *([nn.Dropout2d(dropout)] if dropout else []))

        self.block1 = nn.Sequential(cbr(1, 4), cbr(4, 4), cbr(4, 4))   # 4x28x28  RF 3, 5, 7
        self.pool1 = nn.MaxPool2d(2)                                    # 4x14x14  RF 8
        self.block2 = nn.Sequential(cbr(4, 8), cbr(8, 8), cbr(8, 8))   # 8x14x14  RF 12, 16, 20
        self.pool2 = nn.MaxPool2d(2)                                    # 8x7x7    RF 22
        self.block3 = nn.Sequential(cbr(8, 8), cbr(8, 8), cbr(8, 8))   # 8x7x7    RF 30, 38, 46
        self.gap = nn.AdaptiveAvgPool2d(1)                              # 8x1x1    RF 70
        self.head = nn.Conv2d(8, 10, 1)                                 # 10x1x1

    def forward(self, x):
        x = self.block3(self.pool2(self.block2(self.pool1(self.block1(x)))))
        return F.log_softmax(self.head(self.gap(x)).flatten(1), dim=1)


MODELS = {cls.__name__: cls for cls in (Model_1, Model_2, Model_3)}
CANDIDATES = {cls.__name__: cls for cls in (Model_3_maxpool, Model_3_stride2, Model_3_one_5x5,
                                            Model_3_shared_conv, Model_3_dw_head, Model_3_maxavg_head,
                                            Model_3_separable)}
FRONTIER = {cls.__name__: cls for cls in (Frontier_4530, Frontier_sep_3592, Frontier_sep_3294,
                                          Frontier_sep_3012, Frontier_sep_2516, Frontier_sep_2496,
                                          Frontier_sep_1680, Frontier_sep_931, Woolly_3762,
                                          Frontier_shared_1936, Frontier_shared_977, Frontier_stem8_1928,
                                          Frontier_deep_1976, Frontier_map14_1936,
                                          Frontier_shared_2800, Frontier_shared_2544,
                                          Frontier_shared_2996, Frontier_one_3000, Frontier_one_2702,
                                          Frontier_one_2420, Frontier_free_1932, Frontier_leaky_1936,
                                          Frontier_shared_1699, Frontier_map14_1699,
                                          Frontier_one_shared_1683, Frontier_one_map14_1683,
                                          Frontier_map14_977, Frontier_one_map14_978, Frontier_one3_978,
                                          Frontier_one3_1985, Frontier_one3_2480, Frontier_one3_970)}
MODELS.update(CANDIDATES)
MODELS.update(FRONTIER)
