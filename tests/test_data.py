"""Loading MNIST: the bundled copy, IDX directories, Kaggle CSVs, and every malformed-file case."""

import gzip
import shutil
import struct

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.data import DataFormatError, MNIST_FILES, bundled_mnist_dir


def idx_images(images: np.ndarray) -> bytes:
    return struct.pack(">IIII", 2051, *images.shape) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def write_idx_dir(path, n_train=60, n_test=20, gz=True, seed=0, **overrides):
    """A small MNIST-format directory; overrides replace a file's bytes by key."""
    rng = np.random.default_rng(seed)
    blobs = {
        "train_images": idx_images(rng.integers(0, 256, (n_train, 28, 28))),
        "train_labels": idx_labels(rng.integers(0, 10, n_train)),
        "test_images": idx_images(rng.integers(0, 256, (n_test, 28, 28))),
        "test_labels": idx_labels(rng.integers(0, 10, n_test)),
    }
    blobs.update(overrides)
    path.mkdir(exist_ok=True)
    for key, (stem, _) in MNIST_FILES.items():
        data = blobs[key]
        (path / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(data) if gz else data)
    return path


def test_bundled_mnist(mnist):
    (X, y), (Xt, yt) = mnist
    assert X.shape == (60000, 784) and Xt.shape == (10000, 784)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    assert np.bincount(yt).tolist()[:3] == [980, 1135, 1032]  # the published test-set class counts


def test_bundled_checksums_are_verified(tmp_path, monkeypatch):
    copy = tmp_path / "mnist"
    shutil.copytree(bundled_mnist_dir(), copy)
    raw = bytearray(gzip.decompress((copy / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one label changed: still well-formed, wrong checksum
    (copy / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataFormatError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        mf.load_mnist(copy, verify=True)
    monkeypatch.setattr(mf.data, "bundled_mnist_dir", lambda: copy)
    with pytest.raises(DataFormatError, match="checksum mismatch"):
        mf.load_mnist()


@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory(tmp_path, gz):
    write_idx_dir(tmp_path / "d", gz=gz)
    (X, y), (Xt, yt) = mf.load_mnist(tmp_path / "d")
    assert X.shape == (60, 784) and Xt.shape == (20, 784) and y.shape == (60,)


def test_standardize_uses_training_statistics(tmp_path):
    write_idx_dir(tmp_path / "d")
    (X, _), (Xt, _) = mf.load_mnist(tmp_path / "d", normalize="standardize")
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(X.std(axis=0), 1, atol=1e-4)
    assert abs(Xt.mean()) < 0.2  # test set: close to, not exactly, standardized
    (Xr, _), _ = mf.load_mnist(tmp_path / "d", normalize="none")
    assert Xr.max() > 1


def test_validation_split_is_seeded_and_disjoint(tmp_path):
    write_idx_dir(tmp_path / "d", n_train=100)
    a = mf.load_mnist(tmp_path / "d", validation_split=0.2, seed=3)
    b = mf.load_mnist(tmp_path / "d", validation_split=0.2, seed=3)
    (Xtr, _), (Xv, _), (Xte, _) = a
    assert len(Xtr) == 80 and len(Xv) == 20 and len(Xte) == 20
    np.testing.assert_array_equal(Xv, b[1][0])
    (Xall, _), _ = mf.load_mnist(tmp_path / "d")
    rows = {r.tobytes() for r in Xall}
    assert {r.tobytes() for r in Xtr} | {r.tobytes() for r in Xv} == rows
    c = mf.load_mnist(tmp_path / "d", validation_split=0.2, seed=4)
    assert not np.array_equal(Xv, c[1][0])


def bad_case(tmp_path, **overrides):
    return write_idx_dir(tmp_path / "bad", **overrides)


def test_wrong_magic(tmp_path):
    d = bad_case(tmp_path, train_labels=struct.pack(">II", 2050, 60) + bytes(60))
    with pytest.raises(DataFormatError, match=r"train-labels-idx1-ubyte.gz: wrong magic number 0x00000802"):
        mf.load_mnist(d)


def test_gzip_read_as_raw(tmp_path):
    d = write_idx_dir(tmp_path / "d", gz=False)
    raw = d / "train-images-idx3-ubyte"
    raw.write_bytes(gzip.compress(raw.read_bytes()))
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte: wrong magic number .*gzip-compressed"):
        mf.load_mnist(d)


def test_html_saved_as_gz(tmp_path):
    d = write_idx_dir(tmp_path / "d")
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(b"<!DOCTYPE html><html><body>Not Found</body></html>")
    with pytest.raises(DataFormatError, match=r"t10k-images-idx3-ubyte.gz: not gzip data.*HTML page"):
        mf.load_mnist(d)


def test_truncated_header(tmp_path):
    d = bad_case(tmp_path, test_images=struct.pack(">III", 2051, 20, 28))
    with pytest.raises(DataFormatError, match="t10k-images-idx3-ubyte.gz: truncated header"):
        mf.load_mnist(d)


def test_truncated_data(tmp_path):
    full = idx_images(np.zeros((60, 28, 28)))
    d = bad_case(tmp_path, train_images=full[:-100])
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte.gz: truncated data: header promises 47040 bytes, file has 46940"):
        mf.load_mnist(d)


def test_truncated_gzip_stream(tmp_path):
    d = write_idx_dir(tmp_path / "d")
    f = d / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-200])
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte.gz: the gzip data ends early: the file is truncated"):
        mf.load_mnist(d)


def test_count_mismatch(tmp_path):
    d = bad_case(tmp_path, train_labels=idx_labels(np.zeros(59)))
    with pytest.raises(DataFormatError, match="has 60 images but .*train-labels-idx1-ubyte.gz has 59 labels"):
        mf.load_mnist(d)


def test_label_out_of_range(tmp_path):
    labels = np.zeros(20)
    labels[7] = 12
    d = bad_case(tmp_path, test_labels=idx_labels(labels))
    with pytest.raises(DataFormatError, match="t10k-labels-idx1-ubyte.gz: label 12 at index 7 is out of range: not "
                                              "one of the classes the training labels span"):
        mf.load_mnist(d)


def test_missing_file(tmp_path):
    d = write_idx_dir(tmp_path / "d")
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataFormatError, match="no t10k-labels-idx1-ubyte.gz or t10k-labels-idx1-ubyte"):
        mf.load_mnist(d)
    with pytest.raises(DataFormatError, match="no such file or directory"):
        mf.load_mnist(tmp_path / "nowhere")


# -- Kaggle CSV ---------------------------------------------------------------------------------
HEADER = "label," + ",".join(f"pixel{i}" for i in range(784))


def write_csv(path, rows, header=HEADER):
    path.write_text(header + "\n" + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return path


def csv_rows(n, seed=0, label=True):
    rng = np.random.default_rng(seed)
    pix = rng.integers(0, 256, (n, 784))
    return np.column_stack([rng.integers(0, 10, n), pix]) if label else pix


def test_csv_train_and_test(tmp_path):
    rows = csv_rows(30)
    X, y = mf.load_csv(write_csv(tmp_path / "train.csv", rows))
    assert X.shape == (30, 784) and X.dtype == np.uint8
    np.testing.assert_array_equal(y, rows[:, 0])
    Xt, yt = mf.load_csv(write_csv(tmp_path / "test.csv", csv_rows(5, label=False), HEADER[len("label,"):]))
    assert Xt.shape == (5, 784) and yt is None
    (Xtr, _), (Xte, _) = mf.load_mnist(tmp_path / "train.csv")
    assert len(Xtr) == 27 and len(Xte) == 3 and Xtr.max() <= 1.0
    with pytest.raises(DataFormatError, match="test.csv: this CSV has no label column"):
        mf.load_mnist(tmp_path / "test.csv")


def test_csv_wrong_header(tmp_path):
    f = write_csv(tmp_path / "a.csv", csv_rows(3), header="lbl," + HEADER[6:])
    with pytest.raises(DataFormatError, match=r"a.csv: wrong CSV header 'lbl,pixel0,pixel1,...' \(785 columns\)"):
        mf.load_csv(f)


def test_csv_non_numeric_cell(tmp_path):
    rows = csv_rows(4).astype(object)
    rows[2, 100] = "x7"
    with pytest.raises(DataFormatError, match=r"a.csv: line 4: non-numeric cell 'x7'"):
        mf.load_csv(write_csv(tmp_path / "a.csv", rows))


def test_csv_ragged_row(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text(HEADER + "\n" + ",".join(["1"] * 785) + "\n" + ",".join(["1"] * 700) + "\n")
    with pytest.raises(DataFormatError, match="a.csv: line 3 has 700 cells, expected 785"):
        mf.load_csv(f)


def test_csv_values_out_of_range(tmp_path):
    rows = csv_rows(3)
    rows[1, 0] = -1
    with pytest.raises(DataFormatError, match="a.csv: line 3: label -1 is negative"):
        mf.load_csv(write_csv(tmp_path / "a.csv", rows))
    rows = csv_rows(3)
    rows[0, 5] = 300
    with pytest.raises(DataFormatError, match="b.csv: line 2: pixel values must lie in 0..255"):
        mf.load_csv(write_csv(tmp_path / "b.csv", rows))
