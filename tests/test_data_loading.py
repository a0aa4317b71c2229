"""The data layer: IDX files, torchvision layouts offline, binarization, binarized MNIST,
local files (.npy, .npz, .csv, image folders), ArrayDataset, source/batches, and how
``fit``/``VAE.elbo`` use the datasets' transforms. All offline, on tiny files."""

import gzip
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pyvae import VAE, data, fit

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def write_idx(path, arr) -> Path:
    """Write ``arr`` as an IDX file (gzip-compressed if the name ends in .gz)."""
    arr = np.asarray(arr)
    header = bytes([0, 0, IDX_CODES[arr.dtype], arr.ndim]) + np.array(arr.shape, ">i4").tobytes()
    body = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + body)
    return Path(path)


def images_with_extremes(n: int, seed: int, size: int = 28) -> np.ndarray:
    """Random 8-bit images (n, size, size) that contain both 0 and 255."""
    x = np.random.default_rng(seed).integers(0, 256, size=(n, size, size), dtype=np.uint8)
    x[0, 0, 0], x[0, 0, 1] = 0, 255
    return x


TV_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}
N_TRAIN, N_TEST = 6, 4


def make_torchvision_root(root: Path, name: str = "mnist") -> dict[str, np.ndarray]:
    """``root/<Folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``, tiny."""
    raw = root / TV_FOLDERS[name] / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "x_train": images_with_extremes(N_TRAIN, seed=1),
        "y_train": np.arange(N_TRAIN, dtype=np.uint8) % 10,
        "x_test": images_with_extremes(N_TEST, seed=2),
        "y_test": (9 - np.arange(N_TEST, dtype=np.uint8)) % 10,
    }
    for prefix, part in (("train", "train"), ("t10k", "test")):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", arrays[f"x_{part}"])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", arrays[f"y_{part}"])
    return arrays


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tv")
    return root, make_torchvision_root(root, "mnist")


def tiny_vae():
    return VAE.build(input_shape=(1, 28, 28), z_dim=2, net_kwargs={"hidden": (16,)})


# --------------------------------------------------------------------------- IDX files
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64], ids=str
)
def test_read_idx_round_trips_dtypes(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=(3, 4, 5), endpoint=True).astype(dtype)
    else:
        arr = (rng.standard_normal((3, 4, 5)) * 1e3).astype(dtype)
    path = write_idx(tmp_path / f"a-ubyte{suffix}", arr)
    out = data.read_idx(path)
    assert out.shape == (3, 4, 5)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_read_idx_images_and_labels(tmp_path):
    x = images_with_extremes(3, seed=0, size=5)
    y = np.array([7, 0, 9], np.uint8)
    np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / "i-idx3-ubyte", x)), x)
    np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / "l-idx1-ubyte.gz", y)), y)


def test_read_idx_truncated_data_is_a_clear_value_error(tmp_path):
    path = write_idx(tmp_path / "t-ubyte", np.zeros((4, 3, 3), np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"truncated.*\(4\d bytes, expected 52\)"):
        data.read_idx(path)
    # Extra bytes at the end are corrupt too.
    path.write_bytes(path.read_bytes() + bytes(10))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        data.read_idx(path)


@pytest.mark.parametrize(
    "magic", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"\x89PNG", b"\x00\x00"], ids=repr
)
def test_read_idx_bad_magic_number(tmp_path, magic):
    path = tmp_path / "bad-ubyte"
    path.write_bytes(magic + bytes(8))
    with pytest.raises(ValueError, match="not an IDX file.*magic"):
        data.read_idx(path)


def test_read_idx_truncated_header_is_a_clear_value_error(tmp_path):
    path = tmp_path / "h-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))  # 3 dims announced, 2 bytes of them given
    with pytest.raises(ValueError, match="truncated|corrupt"):
        data.read_idx(path)


def test_read_idx_truncated_gzip_is_a_value_error(tmp_path):
    path = write_idx(tmp_path / "g-ubyte.gz", np.arange(200, dtype=np.uint8))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated|corrupt"):
        data.read_idx(path)


# --------------------------------------------------------------------------- torchvision offline
@pytest.mark.parametrize("name", sorted(TV_FOLDERS))
@pytest.mark.parametrize("download", [False, True])
def test_torchvision_layout_loads_offline(tmp_path, name, download):
    arrays = make_torchvision_root(tmp_path, name)
    train, test = data.load(name, root=tmp_path, download=download)
    for ds, part in ((train, "train"), (test, "test")):
        assert isinstance(ds, data.ArrayDataset)
        assert ds.shape == (1, 28, 28) and len(ds) == len(arrays[f"x_{part}"])
        assert ds.data.dtype == torch.uint8
        np.testing.assert_array_equal(ds.data[:, 0].numpy(), arrays[f"x_{part}"])
        np.testing.assert_array_equal(ds.targets.numpy(), arrays[f"y_{part}"])
        assert isinstance(ds.transform, data.Scale)
        x = data.as_tensor(ds)
        assert x.dtype == torch.float32 and x.min() == 0 and x.max() == 1
        assert torch.allclose(x, ds.data.float() / 255)
        assert len(ds.factor_names) == 10  # the class names
        item, label = ds[1]
        assert item.shape == (1, 28, 28) and item.dtype == torch.float32 and item.max() <= 1
        assert int(label) == int(arrays[f"y_{part}"][1])
    assert not any(p.suffix == ".gz" for p in tmp_path.rglob("*"))  # nothing downloaded


def test_torchvision_name_aliases(mnist_root):
    root, _ = mnist_root
    a, _ = data.load("MNIST", root=root, download=False)
    b, _ = data.load("mnist", root=str(root), download=False)
    assert torch.equal(a.data, b.data)


def test_fashion_mnist_hyphenated_alias(tmp_path):
    make_torchvision_root(tmp_path, "fashion_mnist")
    train, _ = data.load("fashion-mnist", root=tmp_path, download=False)
    assert len(train) == N_TRAIN


@pytest.mark.parametrize(
    "name, folder",
    [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")],
)
def test_torchvision_missing_files_name_the_files_and_folder(tmp_path, name, folder):
    root = tmp_path / "empty"
    with pytest.raises(FileNotFoundError) as info:
        data.load(name, root=root, download=False)
    msg = str(info.value)
    assert name in msg and "download=False" in msg
    expected = f"{folder}/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte"
    assert expected in msg.replace("\\", "/")
    assert str(root) in msg


def test_torchvision_other_dataset_files_do_not_count(tmp_path):
    make_torchvision_root(tmp_path, "mnist")
    with pytest.raises(FileNotFoundError, match="KMNIST"):
        data.load("kmnist", root=tmp_path, download=False)


# --------------------------------------------------------------------------- binarization options
def test_binarize_threshold(mnist_root):
    root, arrays = mnist_root
    train, test = data.load("mnist", root=root, download=False, binarize="threshold")
    for ds, part in ((train, "train"), (test, "test")):
        assert ds.transform is None and ds.data.dtype == torch.uint8
        assert set(ds.data.unique().tolist()) == {0, 1}
        expected = (arrays[f"x_{part}"] > 127).astype(np.uint8)
        np.testing.assert_array_equal(ds.data[:, 0].numpy(), expected)
        assert torch.equal(data.as_tensor(ds), ds.data)
    np.testing.assert_array_equal(train.targets.numpy(), arrays["y_train"])


def test_binarize_static_is_fixed_by_the_seed(mnist_root):
    root, arrays = mnist_root
    a, a_test = data.load("mnist", root=root, download=False, binarize="static", seed=3)
    b, _ = data.load("mnist", root=root, download=False, binarize="static", seed=3)
    c, _ = data.load("mnist", root=root, download=False, binarize="static", seed=4)
    for ds in (a, a_test):
        assert ds.transform is None and ds.data.dtype == torch.uint8
        assert set(ds.data.unique().tolist()) == {0, 1}
        assert ds.shape == (1, 28, 28)
    assert torch.equal(a.data, b.data)
    assert not torch.equal(a.data, c.data)
    # One Bernoulli draw per pixel: the mean matches the grey level (6 * 784 pixels).
    grey = arrays["x_train"].astype(np.float64) / 255
    assert abs(a.data.float().mean().item() - grey.mean()) < 0.03
    # White pixels stay white, black ones stay black.
    assert a.data[0, 0, 0, 0] == 0 and a.data[0, 0, 0, 1] == 1
    # Brighter pixels are on more often.
    on = a.data[:, 0].numpy().astype(bool)
    assert grey[on].mean() > grey[~on].mean() + 0.2


def test_binarize_dynamic_draws_afresh(mnist_root):
    root, arrays = mnist_root
    train, test = data.load("mnist", root=root, download=False, binarize="dynamic")
    assert isinstance(train.transform, data.DynamicBinarize)
    assert test.transform is None  # the test split is fixed (see the next test)
    np.testing.assert_array_equal(train.data[:, 0].numpy(), arrays["x_train"])  # kept grey
    first, second = data.as_tensor(train), data.as_tensor(train)
    for x in (first, second):
        assert x.shape == (N_TRAIN, 1, 28, 28) and x.is_floating_point()
        assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(first, second)
    x0, _ = train[0]
    assert x0.shape == (1, 28, 28) and set(x0.unique().tolist()) <= {0.0, 1.0}


def test_binarize_dynamic_test_split_is_one_seeded_draw(mnist_root):
    """Under "dynamic", the test split is binarized once (uint8 0/1) with seed + 1, the
    draw "static" gives it: two loads give the same test images, another seed others,
    and the train split still draws afresh."""
    root, arrays = mnist_root
    load = lambda **kw: data.load("mnist", root=root, download=False, **kw)  # noqa: E731
    train, test = load(binarize="dynamic")
    _, again = load(binarize="dynamic")
    _, other = load(binarize="dynamic", seed=5)
    _, static = load(binarize="static")
    assert test.data.dtype == torch.uint8 and set(test.data.unique().tolist()) == {0, 1}
    assert torch.equal(test.data, again.data) and torch.equal(test.data, static.data)
    assert not torch.equal(test.data, other.data)
    assert torch.equal(data.as_tensor(test), data.as_tensor(again))
    assert test.data[0, 0, 0, 0] == 0 and test.data[0, 0, 0, 1] == 1  # black 0, white 1
    grey = arrays["x_test"].astype(np.float64) / 255
    assert abs(test.data.float().mean().item() - grey.mean()) < 0.03
    assert not torch.equal(data.as_tensor(train), data.as_tensor(train))


def test_elbo_of_the_dynamic_test_split_repeats(mnist_root):
    """The same seed gives the same test ELBO, from two loads: the images scored are the
    stored ones, drawing no random numbers (they were re-binarized on every read)."""
    root, _ = mnist_root
    _, test = data.load("mnist", root=root, download=False, binarize="dynamic")
    _, test_again = data.load("mnist", root=root, download=False, binarize="dynamic")
    vae = tiny_vae()
    torch.manual_seed(1)
    a = vae.elbo(test, reduction="none")
    torch.manual_seed(1)
    b = vae.elbo(test_again, reduction="none")
    torch.manual_seed(1)
    c = vae.elbo(test.data.float(), reduction="none")  # the stored images themselves
    assert torch.equal(a, b) and torch.equal(a, c)


def test_dynamic_binarize_transform_probabilities():
    torch.manual_seed(0)
    t = data.DynamicBinarize()
    assert t.scale == pytest.approx(1 / 255)
    x = torch.tensor([0, 255], dtype=torch.uint8).repeat(100)
    assert torch.equal(t(x), x.float() / 255)  # 0 and 255 are certain
    grey = torch.full((20000,), 64, dtype=torch.uint8)
    assert abs(t(grey).mean().item() - 64 / 255) < 0.02
    assert "DynamicBinarize" in repr(t)


def test_dynamic_binarize_of_bytes_is_within_1_512_of_x_over_255():
    """The 8-bit path draws each pixel from 8 random bits: P(1) = x/256 below 128 and
    (x+1)/256 from 128 up, which is what 100,000 draws per level must show (4 sd)."""
    torch.manual_seed(0)
    t = data.DynamicBinarize()
    levels = torch.arange(256, dtype=torch.uint8)
    draws = t(levels.repeat(100_000, 1))
    assert draws.dtype == torch.float32 and set(draws.unique().tolist()) == {0.0, 1.0}
    freq = draws.mean(0).double()
    grey = levels.double()
    exact = torch.where(levels < 128, grey, grey + 1) / 256
    assert freq[0] == 0 and freq[255] == 1
    assert (exact - grey / 255).abs().max() <= 1 / 512
    assert torch.all((freq - exact).abs() <= 4 * (exact * (1 - exact) / 100_000).sqrt() + 1e-9)
    floats = t(levels.float().repeat(20_000, 1))  # float input: the exact Bernoulli(x/255)
    assert (floats.mean(0) - levels / 255).abs().max() < 0.02


def test_distinct_values_stand_for_8_bit_data_in_checks():
    x = torch.randint(0, 7, (500, 1, 3, 3), dtype=torch.uint8)
    x[17, 0, 1, 2] = 200
    sample = data.distinct_values(x)
    assert sample.shape[1:] == x.shape[1:] and sample.dtype == torch.uint8
    assert set(sample.unique().tolist()) == set(x.unique().tolist())
    assert data.distinct_values(x.float()) is None
    vae = VAE.build(input_shape=(1, 3, 3), z_dim=2, net_kwargs={"hidden": (4,)})
    vae.check_data(x, data.DynamicBinarize())  # binary after the transform: fine
    with pytest.raises(ValueError, match="Bernoulli"):
        vae.check_data(x, data.Scale(1.0))  # the 200 (and 2..6) are not binary
    with pytest.raises(ValueError, match="input_shape"):
        vae.check_data(x.reshape(500, 9), data.DynamicBinarize())
    with pytest.raises(ValueError, match="empty"):
        vae.check_data(x[:0], data.DynamicBinarize())


def test_values_uint8_gives_integers_0_to_255(mnist_root):
    root, arrays = mnist_root
    train, _ = data.load("mnist", root=root, download=False, values="uint8")
    assert isinstance(train.transform, data.Scale) and train.transform.factor == 1.0
    x = data.as_tensor(train)
    assert x.is_floating_point()
    assert x.min() == 0 and x.max() == 255
    assert torch.equal(x, x.round())
    np.testing.assert_array_equal(x[:, 0].numpy(), arrays["x_train"].astype(np.float32))


def test_values_unit_is_the_default(mnist_root):
    root, _ = mnist_root
    a, _ = data.load("mnist", root=root, download=False)
    b, _ = data.load("mnist", root=root, download=False, values="unit")
    assert a.transform.factor == b.transform.factor == pytest.approx(1 / 255)


@pytest.mark.parametrize(
    "kwargs, option, valid",
    [
        ({"binarize": "yes"}, "binarize", ["threshold", "static", "dynamic"]),
        ({"binarize": True}, "binarize", ["threshold", "static", "dynamic"]),
        ({"values": "float"}, "values", ["unit", "uint8"]),
    ],
)
def test_invalid_options_list_the_valid_ones(mnist_root, kwargs, option, valid):
    root, _ = mnist_root
    with pytest.raises(ValueError) as info:
        data.load("mnist", root=root, download=False, **kwargs)
    msg = str(info.value)
    assert option in msg
    for v in valid:
        assert repr(v) in msg


# --------------------------------------------------------------------------- binarized MNIST
def tiny_binarized_parts() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {k: (rng.random((n, 784)) < 0.2).astype(np.uint8) for k, n in
            (("train", 3), ("valid", 2), ("test", 2))}  # fmt: skip


def check_binarized(train, test, parts):
    for ds in (train, test):
        assert isinstance(ds, data.ArrayDataset)
        assert ds.shape == (1, 28, 28) and ds.data.dtype == torch.uint8
        assert set(ds.data.unique().tolist()) <= {0, 1}
        assert ds.transform is None and ds.targets is None
    assert len(train) == 5 and len(test) == 2
    expected = np.concatenate([parts["train"], parts["valid"]]).reshape(-1, 1, 28, 28)
    np.testing.assert_array_equal(train.data.numpy(), expected)
    np.testing.assert_array_equal(test.data.numpy(), parts["test"].reshape(-1, 1, 28, 28))
    # Row-major: the second bit of a row is pixel (0, 1).
    assert train.data[0, 0, 0, 1] == parts["train"][0, 1]


def test_binarized_mnist_packbits(tmp_path):
    parts = tiny_binarized_parts()
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    np.savez(
        folder / "binarized_mnist_packbits.npz",
        **{k: np.packbits(v, axis=1) for k, v in parts.items()},
    )
    train, test = data.load("binarized_mnist", root=tmp_path, download=False)
    check_binarized(train, test, parts)


def test_binarized_mnist_amat(tmp_path):
    parts = tiny_binarized_parts()
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    for k, v in parts.items():
        np.savetxt(folder / f"binarized_mnist_{k}.amat", v, fmt="%d")
    train, test = data.load("binarized_mnist", root=tmp_path, download=False)
    check_binarized(train, test, parts)


def test_binarized_mnist_missing_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        data.load("binarized_mnist", root=tmp_path, download=False)
    msg = str(info.value)
    assert "binarized_mnist_packbits.npz" in msg and ".amat" in msg
    assert str(tmp_path / "binarized_mnist") in msg


def test_real_binarized_mnist():
    path = SHARED_DATA / "binarized_mnist" / "binarized_mnist_packbits.npz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    train, test = data.load("binarized_mnist", root=SHARED_DATA, download=False)
    assert len(train) == 60000 and len(test) == 10000
    assert train.shape == (1, 28, 28) and train.data.dtype == torch.uint8
    assert set(test.data.unique().tolist()) == {0, 1}
    assert 0.12 < train.data.float().mean().item() < 0.145
    assert 0.12 < test.data.float().mean().item() < 0.145


def test_real_mnist():
    raw = SHARED_DATA / "MNIST" / "raw"
    if not (raw / "train-images-idx3-ubyte").exists():
        pytest.skip(f"{raw} is absent")
    train, test = data.load("mnist", root=SHARED_DATA, download=False)
    assert len(train) == 60000 and len(test) == 10000
    assert train.shape == (1, 28, 28) and train.data.dtype == torch.uint8
    assert train.targets.unique().tolist() == list(range(10))
    assert test.targets.unique().tolist() == list(range(10))
    assert isinstance(train.transform, data.Scale)
    assert 0.12 < train.data.float().mean().item() / 255 < 0.14


# --------------------------------------------------------------------------- local files
def test_npy_float_is_split_deterministically(tmp_path):
    x = np.random.default_rng(0).standard_normal((20, 3))
    x[:, 0] = np.arange(20)  # an item id
    np.save(tmp_path / "x.npy", x)
    train, test = data.load(tmp_path / "x.npy", test_fraction=0.25, seed=1)
    assert len(train) == 15 and len(test) == 5
    assert train.data.dtype == torch.float32 and train.shape == (3,)
    assert train.transform is None and train.targets is None
    ids = sorted(torch.cat([train.data[:, 0], test.data[:, 0]]).int().tolist())
    assert ids == list(range(20))  # a partition of the items
    for row in train.data:  # rows kept whole
        assert np.allclose(row.numpy(), x[int(row[0])].astype(np.float32))
    again, again_test = data.load(str(tmp_path / "x.npy"), test_fraction=0.25, seed=1)
    assert torch.equal(train.data, again.data) and torch.equal(test.data, again_test.data)
    other, _ = data.load(tmp_path / "x.npy", test_fraction=0.25, seed=2)
    assert not torch.equal(train.data, other.data)


def test_npy_without_a_test_split_keeps_the_file_order(tmp_path):
    """``test_fraction=0`` (how ``pyvae score --data`` reads a file): the items in the
    file's order, so that each score lines up with its row."""
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.save(tmp_path / "x.npy", x)
    train, test = data.load(tmp_path / "x.npy", test_fraction=0, seed=3)
    assert len(test) == 0 and np.array_equal(train.data.numpy(), x)


@pytest.mark.parametrize("fraction, n_test", [(0.0, 0), (0.1, 2), (0.5, 10)])
def test_npy_split_sizes(tmp_path, fraction, n_test):
    np.save(tmp_path / "x.npy", np.ones((20, 2), np.float32))
    train, test = data.load(tmp_path / "x.npy", test_fraction=fraction)
    assert len(test) == n_test and len(train) == 20 - n_test


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_npy_bad_test_fraction(tmp_path, fraction):
    np.save(tmp_path / "x.npy", np.ones((20, 2), np.float32))
    with pytest.raises(ValueError, match="test_fraction"):
        data.load(tmp_path / "x.npy", test_fraction=fraction)


def test_npy_uint8_images_get_the_image_conventions(tmp_path):
    x = images_with_extremes(10, seed=0, size=6)
    np.save(tmp_path / "imgs.npy", x)
    train, test = data.load(tmp_path / "imgs.npy", test_fraction=0.2)
    assert train.shape == (1, 6, 6) and len(train) == 8 and len(test) == 2
    assert isinstance(train.transform, data.Scale)
    binary, _ = data.load(tmp_path / "imgs.npy", test_fraction=0.2, binarize="threshold")
    assert set(binary.data.unique().tolist()) <= {0, 1} and binary.transform is None


def test_binarize_refused_for_float_files(tmp_path):
    np.save(tmp_path / "x.npy", np.full((5, 2), 0.5))
    with pytest.raises(ValueError, match="binarize applies to 8-bit images"):
        data.load(tmp_path / "x.npy", binarize="static")


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float32, bool], ids=str)
@pytest.mark.parametrize("binarize", [None, "threshold", "static", "dynamic"])
def test_files_of_0_and_1_are_binary_whatever_the_dtype(tmp_path, dtype, binarize):
    """Values 0 and 1 only are binary data, not 8-bit pixels: kept as they are (a
    threshold at 127 or a draw with p = x/255 would make every image black)."""
    x = (np.random.default_rng(0).random((20, 4, 4)) < 0.5).astype(dtype)
    np.save(tmp_path / "b.npy", x)
    train, test = data.load(tmp_path / "b.npy", binarize=binarize, test_fraction=0.25)
    both = torch.cat([data.as_tensor(train), data.as_tensor(test)]).float()
    assert train.transform is None and set(both.unique().tolist()) == {0.0, 1.0}
    assert both.sum() == x.sum()  # the same ones, none lost
    if dtype == np.uint8:
        assert train.shape == (1, 4, 4)  # images: a channel axis, as for 8-bit images


def test_a_corrupt_image_in_a_folder_is_named(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"\x89PNG not an image")
    with pytest.raises(ValueError, match="b.png: cannot read the image"):
        data.load(tmp_path)


def test_npz_x_and_y_split_together(tmp_path):
    x = np.arange(30, dtype=np.float64).reshape(10, 3)
    y = np.arange(10) * 10
    np.savez(tmp_path / "d.npz", x=x, y=y)
    train, test = data.load(tmp_path / "d.npz", test_fraction=0.3)
    assert len(train) == 7 and len(test) == 3 and train.data.dtype == torch.float32
    for ds in (train, test):
        assert torch.equal(ds.targets, (ds.data[:, 0] / 3 * 10).long())  # labels follow rows


def test_npz_single_unnamed_array(tmp_path):
    np.savez(tmp_path / "d.npz", np.ones((10, 2), np.float32))
    train, test = data.load(tmp_path / "d.npz", test_fraction=0.2)
    assert len(train) == 8 and train.targets is None


@pytest.mark.parametrize(
    "keys",
    [
        ("x_train", "x_test", "y_train", "y_test"),
        ("train", "test", "train_labels", "test_labels"),
    ],
)
def test_npz_given_train_and_test(tmp_path, keys):
    xtr, xte, ytr, yte = keys
    arrays = {
        xtr: np.ones((6, 4), np.float64),
        xte: np.zeros((3, 4), np.float64),
        ytr: np.arange(6),
        yte: np.arange(3),
    }
    np.savez(tmp_path / "d.npz", **arrays)
    train, test = data.load(tmp_path / "d.npz", test_fraction=0.5)  # the split is given
    assert len(train) == 6 and len(test) == 3
    assert torch.equal(train.data, torch.ones(6, 4)) and train.data.dtype == torch.float32
    assert torch.equal(test.targets, torch.arange(3))
    # Without labels.
    np.savez(tmp_path / "e.npz", **{xtr: arrays[xtr], xte: arrays[xte]})
    train, test = data.load(tmp_path / "e.npz")
    assert train.targets is None and test.targets is None and len(test) == 3


def test_npz_image_train_test_keys(tmp_path):
    np.savez(
        tmp_path / "d.npz",
        x_train=images_with_extremes(4, seed=0, size=5),
        x_test=images_with_extremes(2, seed=1, size=5),
    )
    train, test = data.load(tmp_path / "d.npz", binarize="dynamic")
    assert train.shape == (1, 5, 5) and isinstance(train.transform, data.DynamicBinarize)
    assert test.transform is None and set(test.data.unique().tolist()) <= {0, 1}
    _, again = data.load(tmp_path / "d.npz", binarize="dynamic")
    assert torch.equal(test.data, again.data)


def test_npz_ambiguous_keys(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.ones((3, 2)), b=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"cannot tell the data apart.*'a'.*'b'"):
        data.load(tmp_path / "d.npz")


def test_npz_labels_of_the_wrong_length(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((5, 2)), y=np.arange(4))
    with pytest.raises(ValueError, match="5 items but 4 labels"):
        data.load(tmp_path / "d.npz")


def test_csv_without_header_float(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("0.5,1,2\n1.5,3,4\n2.5,5,6\n3.5,7,8\n")
    train, test = data.load(path, test_fraction=0.25)
    assert len(train) == 3 and len(test) == 1
    assert train.data.dtype == torch.float32 and train.shape == (3,)
    rows = sorted(torch.cat([train.data, test.data]).tolist())
    assert rows == [[0.5, 1, 2], [1.5, 3, 4], [2.5, 5, 6], [3.5, 7, 8]]


def test_csv_with_header_integer_counts_stay_int64(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("gene_a, gene_b\n0,12\n3,0\n\n7,1\n1,1\n")  # a blank line is skipped
    train, test = data.load(path, test_fraction=0)
    assert len(train) == 4 and len(test) == 0
    assert train.data.dtype == torch.int64
    assert sorted(train.data.tolist()) == [[0, 12], [1, 1], [3, 0], [7, 1]]
    assert train.targets is None


def test_csv_label_column_by_name(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,label,b\n1.5,3,2\n2.5,7,4\n3.5,3,6\n")
    train, _ = data.load(path, test_fraction=0, label_column="label")
    assert train.shape == (2,) and train.data.dtype == torch.float32
    assert train.targets.dtype == torch.int64
    by_a = dict(zip(train.data[:, 0].tolist(), train.targets.tolist(), strict=True))
    assert by_a == {1.5: 3, 2.5: 7, 3.5: 3}
    assert set(train.data[:, 1].tolist()) == {2.0, 4.0, 6.0}  # the label column is dropped


def test_csv_string_labels_are_indexed(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,kind\n1,cat\n2,dog\n3,cat\n")
    train, _ = data.load(path, test_fraction=0, label_column="kind")
    by_x = dict(zip(train.data[:, 0].tolist(), train.targets.tolist(), strict=True))
    assert by_x == {1: 0, 2: 1, 3: 0}


def test_csv_label_column_by_index_without_header(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,0.5\n0,1.5\n")
    train, _ = data.load(path, test_fraction=0, label_column=0)
    assert sorted(train.targets.tolist()) == [0, 1] and train.shape == (1,)


def test_csv_label_column_by_index_with_header(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,lab\n1,2,0\n3,4,1\n")
    train, _ = data.load(path, test_fraction=0, label_column=2)
    assert train.shape == (2,) and sorted(train.targets.tolist()) == [0, 1]


def test_csv_unknown_label_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"no column 'c'.*\['a', 'b'\]"):
        data.load(path, label_column="c")


def test_csv_non_numeric_column_is_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("age,city,score\n31,Paris,0.5\n40,Oslo,0.7\n")
    with pytest.raises(ValueError, match=r"column 'city' is not numeric.*'Paris'.*label_column"):
        data.load(path)


def test_csv_ragged_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(ValueError, match="row 2 has 2 columns, expected 3"):
        data.load(path)


def test_csv_empty(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        data.load(path)


def test_idx_files_by_path(tmp_path):
    x = images_with_extremes(5, seed=0, size=7)
    for name in ("imgs-idx3-ubyte", "imgs.idx", "imgs-idx3-ubyte.gz"):
        train, test = data.load(write_idx(tmp_path / name, x), test_fraction=0.2)
        assert train.shape == (1, 7, 7) and len(train) == 4 and len(test) == 1
        assert train.data.dtype == torch.uint8 and isinstance(train.transform, data.Scale)


def write_png(path: Path, img: torch.Tensor) -> None:
    """Write a uint8 (C, H, W) tensor as PNG with Pillow."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    array = img.permute(1, 2, 0).numpy()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder(tmp_path, channels):
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (5, channels, 6, 8), dtype=torch.uint8, generator=g)
    for i, img in enumerate(imgs):
        write_png(tmp_path / "imgs" / ("sub" if i == 4 else "") / f"{i}.png", img)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    train, test = data.load(tmp_path / "imgs", test_fraction=0.4)
    assert len(train) == 3 and len(test) == 2
    assert train.shape == (channels, 6, 8) and train.data.dtype == torch.uint8
    assert isinstance(train.transform, data.Scale) and train.targets is None
    got = sorted(map(tuple, torch.cat([train.data, test.data]).flatten(1).tolist()))
    assert got == sorted(map(tuple, imgs.flatten(1).tolist()))  # lossless, subfolders too
    x = data.as_tensor(train)
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_image_folder_mixed_sizes_names_both_files(tmp_path):
    write_png(tmp_path / "a.png", torch.zeros(1, 8, 8, dtype=torch.uint8))
    write_png(tmp_path / "b.png", torch.zeros(1, 6, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"mixed sizes.*a\.png.*b\.png"):
        data.load(tmp_path)


def test_empty_image_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="no image files"):
        data.load(tmp_path)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        data.load("not_a_dataset")
    msg = str(info.value)
    assert "not_a_dataset" in msg
    for name in (
        "binarized_mnist",
        "mnist",
        "fashion_mnist",
        "kmnist",
        "shapes",
        "sprites",
        "cifar10",
    ):
        assert re.search(rf"\b{name}\b", msg)


def test_nonexistent_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load(tmp_path / "missing.npy")
    with pytest.raises(FileNotFoundError):
        data.load(str(tmp_path / "no_folder" / "x"))


def test_unknown_file_extension(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("1 2 3\n")
    with pytest.raises(ValueError, match=r"unknown file type.*\.npy.*\.csv"):
        data.load(path)


# --------------------------------------------------------------------------- ArrayDataset
def test_array_dataset_labels_of_the_wrong_length():
    with pytest.raises(ValueError, match="3 items but 2 labels"):
        data.ArrayDataset(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="first"):
        data.ArrayDataset(torch.tensor(1.0))


def test_array_dataset_basics_and_subset():
    x = torch.arange(24, dtype=torch.uint8).reshape(6, 1, 2, 2)
    y = torch.arange(6) * 2
    ds = data.ArrayDataset(x, y, ["digit"], data.Scale(0.5))
    assert len(ds) == 6 and ds.shape == (1, 2, 2) and ds.factor_names == ("digit",)
    item, label = ds[2]
    assert torch.equal(item, x[2].float() * 0.5) and int(label) == 4
    items, labels = ds[1:3]  # slices transform too
    assert items.shape == (2, 1, 2, 2) and torch.equal(labels, y[1:3])
    for index in (slice(1, 4), torch.tensor([5, 0]), torch.tensor([1, 0, 1, 0, 0, 1]).bool()):
        sub = ds.subset(index)
        assert isinstance(sub, data.ArrayDataset)
        assert torch.equal(sub.data, x[index]) and torch.equal(sub.targets, y[index])
        assert sub.transform is ds.transform and sub.factor_names == ds.factor_names
    assert len(ds.subset(torch.tensor([5, 0]))) == 2
    assert "n=6" in repr(ds) and "Scale" in repr(ds)


def test_array_dataset_without_labels_or_transform():
    ds = data.ArrayDataset(np.ones((4, 3)))  # NumPy float64 becomes float32
    assert ds.data.dtype == torch.float32 and ds.targets is None
    assert torch.equal(ds[0], torch.ones(3)) and ds.subset([0, 1]).targets is None


def test_array_dataset_of_a_tensor_converts_like_source():
    x64 = torch.rand(4, 3, dtype=torch.float64)
    assert data.as_tensor(x64).dtype == torch.float32
    assert data.as_tensor(data.ArrayDataset(x64)).dtype == torch.float32
    xb = torch.ones(4, 3, dtype=torch.bool)
    assert data.as_tensor(data.ArrayDataset(xb)).dtype == torch.uint8


# --------------------------------------------------------------------------- source / batches
def test_source_conversions():
    x, t = data.source(np.random.default_rng(0).random((4, 3)))
    assert x.dtype == torch.float32 and t is None
    x, _ = data.source(np.array([[True, False]]))
    assert x.dtype == torch.uint8 and x.tolist() == [[1, 0]]
    x, _ = data.source(np.arange(6, dtype=np.int64).reshape(2, 3))
    assert x.dtype == torch.int64
    x, _ = data.source(np.ones((2, 3), np.float64)[:, ::2])  # non-contiguous
    assert x.shape == (2, 2) and x.dtype == torch.float32
    x, _ = data.source(torch.ones(2, 2, dtype=torch.bool))
    assert x.dtype == torch.uint8
    u8 = torch.ones(2, 2, dtype=torch.uint8)
    assert data.source(u8)[0] is u8  # no copy of compact data


@pytest.mark.parametrize(
    "bad",
    [np.array([["a", "b"]], dtype=object), np.array([[{}, None]], dtype=object), np.array(["a"])],
    ids=["object-str", "object-misc", "unicode"],
)
def test_source_rejects_non_numeric_arrays(bad):
    with pytest.raises(TypeError, match="not numeric"):
        data.source(bad)


def test_source_rejects_other_types():
    with pytest.raises(TypeError, match="cannot use .*list"):
        data.source([[1.0, 2.0]])
    with pytest.raises(TypeError, match="cannot use .*str"):
        data.source("not data")
    with pytest.raises(TypeError, match="complex"):
        data.source(torch.ones(2, 2, dtype=torch.complex64))


def test_source_of_array_dataset_keeps_the_transform():
    ds = data.ArrayDataset(torch.zeros(3, 2, dtype=torch.uint8), transform=data.Scale())
    x, t = data.source(ds)
    assert x is ds.data and t is ds.transform


class PairDataset(torch.utils.data.Dataset):
    """(x, label) tuples, x as NumPy float64."""

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return np.full((2, 3), float(i)), i


def test_source_of_a_torch_dataset_of_pairs():
    x, t = data.source(PairDataset())
    assert t is None and x.shape == (5, 2, 3) and x.dtype == torch.float32
    assert x[:, 0, 0].tolist() == [0, 1, 2, 3, 4]


def test_source_of_datasets_with_mismatched_or_no_len():
    class Ragged(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.zeros(i + 1)

    with pytest.raises(ValueError, match="differ in shape"):
        data.source(Ragged())

    class NoLen(torch.utils.data.Dataset):
        def __getitem__(self, i):
            return torch.zeros(1)

    with pytest.raises(TypeError, match="len"):
        data.source(NoLen())


def test_batches_order_device_and_transform():
    x = torch.arange(10, dtype=torch.uint8).reshape(10, 1)
    out = list(data.batches(x, None, 4))
    assert [len(b) for b in out] == [4, 4, 2] and torch.equal(torch.cat(out), x)
    order = torch.tensor([9, 0, 8, 1, 7, 2, 6, 3, 5, 4])
    out = list(data.batches(x, data.Scale(0.1), 3, device=torch.device("cpu"), order=order))
    assert [len(b) for b in out] == [3, 3, 3, 1]
    for b in out:
        assert b.device.type == "cpu" and b.dtype == torch.float32
    assert torch.allclose(torch.cat(out)[:, 0], order.float() * 0.1)
    out = list(data.batches(x, None, 100, device="cpu", order=order))
    assert len(out) == 1 and out[0].dtype == torch.uint8
    assert out[0][:, 0].tolist() == order.tolist()
    assert list(data.batches(x[:0], None, 4)) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_batches_move_to_cuda_before_the_transform():
    x = torch.full((5, 2), 255, dtype=torch.uint8)
    seen = []

    def transform(b):
        seen.append((b.device.type, b.dtype))
        return b.float() / 255

    out = list(data.batches(x, transform, 2, device="cuda"))
    assert all(s == ("cuda", torch.uint8) for s in seen)  # moved compact
    assert all(b.is_cuda and bool((b == 1).all()) for b in out)


def test_scale_transform():
    s = data.Scale()
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(s(x), torch.tensor([0.0, 0.2, 1.0]))
    assert s(x).dtype == torch.float32
    assert torch.equal(data.Scale(2)(x), x.float() * 2)
    assert "Scale" in repr(s)


# --------------------------------------------------------------------------- with fit / VAE
def test_fit_and_elbo_with_dynamic_binarization(mnist_root):
    root, _ = mnist_root
    train, test = data.load("mnist", root=root, download=False, binarize="dynamic")
    vae = tiny_vae()
    history = fit(vae, train, test, epochs=1, batch_size=4, progress=False, seed=0)
    assert history["epoch"] == [1]
    assert np.isfinite(history["train_elbo"][0]) and history["train_elbo"][0] < 0
    assert np.isfinite(history["val_elbo"][0])
    elbo = vae.elbo(test, reduction="none")
    assert elbo.shape == (N_TEST,) and bool(torch.isfinite(elbo).all()) and bool((elbo < 0).all())
    q = vae.encode(train)
    assert q.mean.shape == (N_TRAIN, 2)
    assert vae.reconstruct(test).shape == (N_TEST, 1, 28, 28)


def test_fit_with_static_and_threshold_binarization(mnist_root):
    root, _ = mnist_root
    for binarize in ("static", "threshold"):
        train, _ = data.load("mnist", root=root, download=False, binarize=binarize)
        vae = tiny_vae()
        history = fit(vae, train, epochs=1, batch_size=8, progress=False)
        assert np.isfinite(history["train_elbo"][0])
        # Fixed binary data: the ELBO of the same data is repeatable with the same seed.
        torch.manual_seed(1)
        a = vae.elbo(train)
        torch.manual_seed(1)
        assert torch.equal(a, vae.elbo(train))


def test_bernoulli_fit_refuses_grey_images_before_training(mnist_root):
    root, _ = mnist_root
    grey, _ = data.load("mnist", root=root, download=False)
    assert isinstance(grey.transform, data.Scale)
    vae = tiny_vae()
    before = {k: v.detach().clone() for k, v in vae.state_dict().items()}
    assert before
    with pytest.raises(ValueError, match="binarize"):
        fit(vae, grey, epochs=1, batch_size=4, progress=False)
    after = vae.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="binarize"):
        vae.elbo(grey)


def test_fit_on_a_csv_of_counts(tmp_path):
    rng = np.random.default_rng(0)
    counts = rng.poisson(3.0, size=(12, 4))
    path = tmp_path / "counts.csv"
    path.write_text("a,b,c,d\n" + "\n".join(",".join(map(str, r)) for r in counts) + "\n")
    train, test = data.load(path, test_fraction=0.25)
    assert train.data.dtype == torch.int64 and len(test) == 3
    vae = VAE.build(input_shape=(4,), z_dim=2, likelihood="gaussian", net_kwargs={"hidden": (8,)})
    history = fit(vae, train, epochs=1, batch_size=4, progress=False)
    assert np.isfinite(history["train_elbo"][0])


def test_cli_run_records_the_data_conventions(tmp_path):
    """`pyvae train` records in config.json how the test split was binarized under
    --binarize dynamic, and reads 8-bit values as 0..255 for --likelihood beta_binomial."""
    import json

    from pyvae.cli import main

    np.save(tmp_path / "x.npy", images_with_extremes(40, seed=0, size=6))
    common = ["train", "--dataset", str(tmp_path / "x.npy"), "--epochs", "1", "--quiet"]
    assert main([*common, "--binarize", "dynamic", "--out", str(tmp_path / "a")]) == 0
    spec = json.loads((tmp_path / "a" / "config.json").read_text())["data"]
    assert spec["test_split"].startswith("binarized once with seed 1")
    assert main([*common, "--likelihood", "beta_binomial", "--out", str(tmp_path / "b")]) == 0
    spec = json.loads((tmp_path / "b" / "config.json").read_text())["data"]
    assert spec["values"] == "uint8" and "test_split" not in spec


def test_counts_given_to_bernoulli_are_told_to_use_a_count_likelihood(tmp_path):
    """Integers above 1 that are not 8-bit images are counts, not pixels to divide by 255."""
    from pyvae import VAE

    np.savetxt(tmp_path / "c.csv", np.arange(60).reshape(10, 6) % 7, fmt="%d", delimiter=",")
    train, _ = data.load(tmp_path / "c.csv")
    vae = VAE.build(input_shape=train.shape, z_dim=2)
    with pytest.raises(ValueError, match="look like counts") as e:
        vae.check_data(train.data, train.transform)
    assert "255" not in str(e.value)


def test_a_csv_column_that_looks_like_a_label_gets_a_warning(tmp_path):
    """A first or last column named like a label, or of a few integers among real-valued
    (or more varied) features, is warned about; label_column= takes it out."""
    rng = np.random.default_rng(0)
    wine = tmp_path / "wine.csv"
    cultivar = np.repeat([1, 2, 3], 10)
    rows = [f"{c}," + ",".join(f"{v:.3f}" for v in rng.normal(size=3)) for c in cultivar]
    wine.write_text("\n".join(rows) + "\n")  # no header: found by its values
    assert data.label_like_columns(wine) == [(0, "3 distinct integers: [1, 2, 3]")]
    with pytest.warns(UserWarning, match=r"column 0 looks like a label.*label_column=0"):
        train, _ = data.load(wine)
    assert train.shape == (4,)
    counts = tmp_path / "counts.csv"
    table = rng.poisson(20.0, size=(30, 4))
    lines = ["a,b,c,d,label"] + [",".join(map(str, r)) + f",{i % 2}" for i, r in enumerate(table)]
    counts.write_text("\n".join(lines) + "\n")
    assert [c for c, _ in data.label_like_columns(counts)] == ["label"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train, _ = data.load(counts, label_column="label")
    assert train.shape == (4,) and set(train.targets.tolist()) == {0, 1}
    plain = tmp_path / "plain.csv"  # counts alike in every column: no label to see
    plain.write_text("\n".join(",".join(map(str, r)) for r in rng.poisson(1.0, (30, 3))) + "\n")
    assert data.label_like_columns(plain) == []


def test_label_column_applies_to_csv_files_only(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 3), dtype=np.float32))
    for source in (tmp_path / "x.npy", "sprites"):
        with pytest.raises(ValueError, match="label_column applies to .csv files"):
            data.load(source, label_column=0)


def test_the_pair_load_returns_is_not_taken_for_data():
    pair = data.load("sprites", n_train=8, n_test=4, size=16)
    vae = VAE.build(input_shape=(1, 16, 16), z_dim=2, net_kwargs={"hidden": (8,)})
    for use in (lambda: fit(vae, pair, epochs=1, progress=False), lambda: vae.elbo(pair)):
        with pytest.raises(TypeError, match=r"train, test = data\.load\(\.\.\.\)"):
            use()
