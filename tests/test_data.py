"""Dataset providers, spec resolution and batch sources, on small generated data."""

from __future__ import annotations

import builtins
import os
import pickle
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakedata import (
    python2_cifar_batch,
    write_fake_cifar10,
    write_fake_cifar100,
    write_fake_imagefolder,
    write_fake_npz,
)

from pdarts_cli.data import (
    DatasetInfo,
    DeviceBatches,
    ImageDataset,
    ImageTensors,
    LoaderBatches,
    default_data_dir,
    make_batch_source,
    parse_dataset_spec,
    resolve_dataset,
    split_indices,
)
from pdarts_cli.data.providers.cifar import CIFAR10, CIFAR100
from pdarts_cli.data.stats import channel_stats
from pdarts_cli.data.transforms import loader_transform
from pdarts_cli.errors import DatasetError, RegistryError
from pdarts_cli.registry import dataset_registry, first_doc_line

CPU = torch.device("cpu")
BUILT_IN = ["cifar10", "cifar100", "digits", "imagefolder", "npz"]


def one_line_error(excinfo: pytest.ExceptionInfo[DatasetError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert message
    return message


def tensors(images: torch.Tensor, labels: torch.Tensor | None = None) -> ImageTensors:
    if labels is None:
        labels = torch.arange(images.shape[0])
    return ImageTensors(images, labels)


# --- registry and spec ------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_providers_are_registered_with_a_one_line_description(name: str) -> None:
    provider = dataset_registry().get(name)
    assert callable(provider)
    assert first_doc_line(provider)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("cifar10", ("cifar10", None)),
        ("npz:", ("npz", None)),
        ("npz:/a/b.npz", ("npz", "/a/b.npz")),
        ("npz:C:\\data\\x.npz", ("npz", "C:\\data\\x.npz")),
    ],
)
def test_parse_dataset_spec_splits_at_the_first_colon(
    spec: str, expected: tuple[str, str | None]
) -> None:
    assert parse_dataset_spec(spec) == expected


def test_unknown_dataset_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="no-such-set"):
        resolve_dataset("no-such-set:x")


@pytest.mark.parametrize("name", ["npz", "imagefolder"])
def test_provider_without_its_path_says_how_to_give_one(name: str) -> None:
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset(name)
    assert one_line_error(excinfo) == f"{name} needs a path: {name}:PATH"


def test_provider_that_returns_something_else_is_reported() -> None:
    registry = dataset_registry()
    registry.register("test-broken", lambda request: None)
    try:
        with pytest.raises(DatasetError, match="test-broken"):
            resolve_dataset("test-broken")
    finally:
        registry.unregister("test-broken")


def test_default_data_dir_prefers_pdarts_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PDARTS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "data"


def test_default_data_dir_falls_back_to_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PDARTS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / "pdarts" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == Path.home() / ".cache" / "pdarts" / "data"


def test_resolve_dataset_reads_from_pdarts_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_fake_cifar10(tmp_path, n_train_per_batch=2, n_test=2)
    monkeypatch.setenv("PDARTS_DATA", str(tmp_path))
    test = resolve_dataset("cifar10").test
    assert isinstance(test, ImageTensors)
    assert len(test) == 2


# --- CIFAR ------------------------------------------------------------------------------


def test_cifar10_reads_torchvision_layout(tmp_path: Path) -> None:
    written = write_fake_cifar10(tmp_path, n_train_per_batch=20, n_test=20)
    dataset = resolve_dataset("cifar10", data_dir=tmp_path)
    train, test = dataset.train, dataset.test
    assert isinstance(train, ImageTensors)
    assert isinstance(test, ImageTensors)
    assert train.images.shape == (100, 3, 32, 32)
    assert train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64
    assert np.array_equal(train.images.numpy(), written.x_train)
    assert np.array_equal(train.labels.numpy(), written.y_train)
    assert np.array_equal(test.images.numpy(), written.x_test)
    assert Counter(train.labels.tolist()) == dict.fromkeys(range(10), 10)
    assert dataset.info == DatasetInfo(
        "cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    )


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    written = write_fake_cifar100(tmp_path, n_train=200, n_test=100)
    dataset = resolve_dataset("cifar100", data_dir=tmp_path)
    assert isinstance(dataset.train, ImageTensors)
    assert dataset.train.images.shape == (200, 3, 32, 32)
    assert np.array_equal(dataset.train.labels.numpy(), written.y_train)
    assert Counter(dataset.train.labels.tolist()) == dict.fromkeys(range(100), 2)
    assert dataset.info.num_classes == 100
    assert dataset.info.mean == (0.5071, 0.4867, 0.4408)
    assert dataset.info.std == (0.2675, 0.2565, 0.2761)


def test_missing_cifar_says_where_it_looked_and_how_to_get_it(tmp_path: Path) -> None:
    from torchvision.datasets import CIFAR10

    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset("cifar10", data_dir=tmp_path)
    message = one_line_error(excinfo)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "--download" in message
    assert "PDARTS_DATA" in message
    assert CIFAR10.url in message
    assert CIFAR10.tgz_md5 in message
    assert str(tmp_path / CIFAR10.base_folder / "data_batch_1") in message


def test_cifar_layouts_read_where_torchvision_unpacks() -> None:
    """The reader's folders are the ones torchvision's archives unpack to, which the
    download and the by-hand instructions rely on."""
    from torchvision import datasets

    for layout in (CIFAR10, CIFAR100):
        source = getattr(datasets, layout.torchvision_class)
        assert layout.folder == source.base_folder
        assert {name for name, _ in source.train_list} == set(layout.train_files)
        assert {name for name, _ in source.test_list} == set(layout.test_files)


def test_incomplete_cifar_names_the_missing_files(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path, n_train_per_batch=2, n_test=2)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset("cifar10", data_dir=tmp_path)
    assert "data_batch_3" in one_line_error(excinfo)


def test_cifar_download_fetches_once_then_reads_with_our_reader(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from torchvision.datasets import utils

    calls: list[tuple[str, str | None]] = []

    def fake_download(url: str, root: str, filename: str, md5: str) -> None:
        calls.append((url, md5))
        write_fake_cifar10(Path(root), n_train_per_batch=2, n_test=2)

    monkeypatch.setattr(utils, "download_and_extract_archive", fake_download)
    dataset = resolve_dataset("cifar10", data_dir=tmp_path, download=True)
    resolve_dataset("cifar10", data_dir=tmp_path, download=True)  # already there: no fetch
    assert isinstance(dataset.train, ImageTensors)
    assert len(dataset.train) == 10
    assert len(calls) == 1
    assert calls[0][0].endswith("cifar-10-python.tar.gz")
    assert calls[0][1]


@pytest.mark.parametrize(
    "failure",
    [
        URLError("[Errno -3] Temporary failure\nin name resolution"),
        OSError(28, "No space left on device"),
        RuntimeError("File not found or corrupted."),
    ],
)
def test_failed_download_says_how_to_fetch_by_hand(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, failure: Exception
) -> None:
    from torchvision.datasets import CIFAR100, utils

    def offline(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(utils, "download_and_extract_archive", offline)
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset("cifar100", data_dir=tmp_path, download=True)
    message = one_line_error(excinfo)
    assert "could not download cifar100" in message
    assert CIFAR100.url in message
    assert CIFAR100.tgz_md5 in message
    assert str(tmp_path / CIFAR100.base_folder / "train") in message


def test_corrupt_cifar_file_is_one_line(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path, n_train_per_batch=2, n_test=2)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset("cifar10", data_dir=tmp_path)
    assert "test_batch" in one_line_error(excinfo)


def test_cifar_file_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path, n_train_per_batch=2, n_test=2)
    batch = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset("cifar10", data_dir=tmp_path)
    assert "3072" in one_line_error(excinfo)


class _RunsCommand:
    """Pickles as a call to ``function(argument)``: what a hostile CIFAR file would hold."""

    def __init__(self, function: object, argument: str) -> None:
        self.function = function
        self.argument = argument

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return self.function, (self.argument,)


@pytest.mark.parametrize("function", [os.system, builtins.eval])
def test_malicious_cifar_pickle_is_refused_without_running(
    tmp_path: Path, function: object
) -> None:
    write_fake_cifar10(tmp_path, n_train_per_batch=2, n_test=2)
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if function is os.system else f"open({str(marker)!r}, 'w')"
    payload = {b"data": _RunsCommand(function, command), b"labels": [0]}
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps(payload))
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset("cifar10", data_dir=tmp_path)
    assert "refusing to load" in one_line_error(excinfo)
    assert not marker.exists()


def test_cifar_refuses_an_argument(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="takes no argument"):
        resolve_dataset("cifar10:/somewhere", data_dir=tmp_path)


# --- digits -----------------------------------------------------------------------------


def test_digits_is_offline_with_a_fixed_split() -> None:
    from sklearn.datasets import load_digits

    dataset = resolve_dataset("digits")
    train, test = dataset.train, dataset.test
    assert isinstance(train, ImageTensors)
    assert isinstance(test, ImageTensors)
    assert (len(train), len(test)) == (1438, 359)
    assert train.images.shape[1:] == (1, 8, 8)
    assert train.images.dtype == torch.uint8
    source = load_digits()
    assert torch.equal(test.labels, torch.from_numpy(source.target[4::5]).long())
    expected = np.rint(source.images[4] * 255 / 16).astype(np.uint8)
    assert np.array_equal(test.images[0, 0].numpy(), expected)
    assert int(train.images.max()) == 255
    scaled = train.images.double() / 255
    info = dataset.info
    assert (info.num_classes, info.channels, info.image_size) == (10, 1, 8)
    assert info.mean[0] == pytest.approx(float(scaled.mean()), abs=1e-12)
    assert info.std[0] == pytest.approx(float(scaled.std(correction=0)), abs=1e-12)


def test_digits_without_scikit_learn_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset("digits")
    assert 'pip install "pdarts[digits]"' in one_line_error(excinfo)


# --- npz --------------------------------------------------------------------------------


def test_npz_reads_nhwc_into_nchw(tmp_path: Path) -> None:
    path = tmp_path / "small.npz"
    written = write_fake_npz(path, n_train=40, n_test=12, size=8, num_classes=4)
    dataset = resolve_dataset(f"npz:{path}")
    train, test = dataset.train, dataset.test
    assert isinstance(train, ImageTensors)
    assert isinstance(test, ImageTensors)
    assert np.array_equal(train.images.numpy(), written.x_train)
    assert np.array_equal(test.labels.numpy(), written.y_test)
    assert train.images.is_contiguous()
    scaled = torch.from_numpy(written.x_train).double() / 255
    info = dataset.info
    assert (info.num_classes, info.channels, info.image_size) == (4, 3, 8)
    assert info.mean == pytest.approx(scaled.mean(dim=(0, 2, 3)).tolist(), abs=1e-12)
    assert info.std == pytest.approx(scaled.std(dim=(0, 2, 3), correction=0).tolist(), abs=1e-12)


def test_npz_grey_images_get_a_channel(tmp_path: Path) -> None:
    path = tmp_path / "grey.npz"
    written = write_fake_npz(path, channels=None)
    dataset = resolve_dataset(f"npz:{path}")
    assert dataset.info.channels == 1
    assert isinstance(dataset.train, ImageTensors)
    assert np.array_equal(dataset.train.images.numpy(), written.x_train)


def test_npz_classes_count_both_splits(tmp_path: Path) -> None:
    path = tmp_path / "classes.npz"
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[1] = 255
    np.savez(path, x_train=images, y_train=np.array([0, 1]), x_test=images, y_test=[0, 6])
    assert resolve_dataset(f"npz:{path}").info.num_classes == 7


def _save_npz(path: Path, **overrides: np.ndarray | None) -> None:
    arrays: dict[str, np.ndarray | None] = {
        "x_train": np.arange(4 * 8 * 8 * 3, dtype=np.uint8).reshape(4, 8, 8, 3),
        "y_train": np.zeros(4, np.int64),
        "x_test": np.zeros((2, 8, 8, 3), np.uint8),
        "y_test": np.zeros(2, np.int64),
    }
    arrays.update(overrides)
    kept: dict[str, Any] = {key: value for key, value in arrays.items() if value is not None}
    np.savez(path, **kept)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"y_test": None}, "lacks y_test"),
        ({"x_train": np.zeros((4, 8, 8, 3), np.float32)}, "expected uint8"),
        ({"x_train": np.zeros((4, 3, 8, 8), np.uint8)}, "expected square"),
        ({"y_train": np.zeros(3, np.int64)}, "expected (4,)"),
        ({"y_train": np.zeros(4, np.float64)}, "integer class labels"),
        ({"y_train": np.array([0, -1, 0, 0])}, "negative"),
        ({"x_test": np.zeros((2, 4, 4, 3), np.uint8)}, "x_test images are"),
        ({"x_train": np.full((4, 8, 8, 3), 7, np.uint8)}, "is constant"),
        ({"x_train": np.array([{"a": 1}] * 4, dtype=object)}, "cannot read"),
    ],
)
def test_bad_npz_is_one_line_naming_file_and_problem(
    tmp_path: Path, overrides: dict[str, np.ndarray | None], problem: str
) -> None:
    path = tmp_path / "bad.npz"
    _save_npz(path, **overrides)
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset(f"npz:{path}")
    message = one_line_error(excinfo)
    assert str(path) in message
    assert problem in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "not found"), (b"garbage", "cannot read"), ("npy", "single array")],
)
def test_npz_that_is_not_an_archive(
    tmp_path: Path, content: bytes | str | None, problem: str
) -> None:
    path = tmp_path / "x.npz"
    if content == "npy":
        with path.open("wb") as file:
            np.save(file, np.zeros(3))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset(f"npz:{path}")
    message = one_line_error(excinfo)
    assert str(path) in message
    assert problem in message


# --- imagefolder ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    write_fake_imagefolder(root, ["cat", "dog", "eel"], per_class=3, size=12)
    return root


def test_imagefolder_is_lazy_with_imagenet_normalisation(image_root: Path) -> None:
    dataset = resolve_dataset(f"imagefolder:{image_root}", image_size=16)
    info = dataset.info
    assert (info.num_classes, info.channels, info.image_size) == (3, 3, 16)
    assert info.mean == (0.485, 0.456, 0.406)
    assert info.std == (0.229, 0.224, 0.225)
    train: Any = dataset.train  # torchvision's ImageFolder, untyped
    test: Any = dataset.test
    assert len(train) == 9
    image, label = test[4]
    assert image.size == (12, 12)
    assert label == 1
    assert resolve_dataset(f"imagefolder:{image_root}").info.image_size == 32


def test_imagefolder_missing_val_folder(tmp_path: Path) -> None:
    write_fake_imagefolder(tmp_path, ["a"], per_class=1, size=4)
    shutil.rmtree(tmp_path / "val")
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset(f"imagefolder:{tmp_path}")
    assert str(tmp_path / "val") in one_line_error(excinfo)


def test_imagefolder_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset(f"imagefolder:{tmp_path / 'nowhere'}")
    assert str(tmp_path / "nowhere" / "train") in one_line_error(excinfo)


def test_imagefolder_empty_class_folder(tmp_path: Path) -> None:
    write_fake_imagefolder(tmp_path, ["a"], per_class=1, size=4)
    (tmp_path / "train" / "b").mkdir()
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset(f"imagefolder:{tmp_path}")
    assert str(tmp_path / "train") in one_line_error(excinfo)


def test_imagefolder_class_sets_must_match(tmp_path: Path) -> None:
    write_fake_imagefolder(tmp_path, ["a", "b"], per_class=1, size=4)
    write_fake_imagefolder(tmp_path / "extra", ["c"], per_class=1, size=4)
    (tmp_path / "extra" / "val" / "c").rename(tmp_path / "val" / "c")
    with pytest.raises(DatasetError) as excinfo:
        resolve_dataset(f"imagefolder:{tmp_path}")
    assert "only in val: c" in one_line_error(excinfo)


# --- split ------------------------------------------------------------------------------


def test_split_indices_follows_the_official_split() -> None:
    weights, alphas = split_indices(7, 0.5)
    assert weights.tolist() == [0, 1, 2]
    assert alphas.tolist() == [3, 4, 5, 6]
    assert weights.dtype == alphas.dtype == torch.int64
    assert [len(part) for part in split_indices(10, 1.0)] == [10, 0]
    with pytest.raises(ValueError, match="train_portion"):
        split_indices(10, 1.5)


# --- DeviceBatches ----------------------------------------------------------------------


def random_data(n: int = 10, channels: int = 3, size: int = 8) -> ImageTensors:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, size, size), generator=generator)
    return tensors(images.to(torch.uint8))


def device_batches(
    data: ImageTensors,
    batch_size: int = 4,
    crop_padding: int = 0,
    horizontal_flip: bool = False,
    cutout: int = 0,
    drop_last: bool = False,
) -> DeviceBatches:
    """Batches with mean 0 and std 1, so outputs are the [0, 1] images themselves."""
    channels = int(data.images.shape[1])
    return DeviceBatches(
        data,
        None,
        batch_size,
        (0.0,) * channels,
        (1.0,) * channels,
        CPU,
        crop_padding=crop_padding,
        horizontal_flip=horizontal_flip,
        cutout=cutout,
        drop_last=drop_last,
    )


def augmented(data: ImageTensors) -> DeviceBatches:
    return device_batches(data, crop_padding=2, horizontal_flip=True, cutout=3)


def test_device_batches_same_seed_same_batches_bit_for_bit() -> None:
    source = augmented(random_data())
    first, second = list(source.epoch(5)), list(source.epoch(5))
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        assert torch.equal(x1, x2)
        assert torch.equal(y1, y2)


def test_device_batches_different_seeds_differ() -> None:
    source = augmented(random_data())
    x1 = torch.cat([x for x, _ in source.epoch(1)])
    x2 = torch.cat([x for x, _ in source.epoch(2)])
    assert not torch.equal(x1, x2)


def test_device_batches_count_and_last_partial_batch() -> None:
    data = random_data(n=10)
    source = device_batches(data, batch_size=4)
    batches = list(source.epoch(0))
    assert len(source) == len(batches) == 3
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == list(range(10))
    dropping = device_batches(data, batch_size=4, drop_last=True)
    assert len(dropping) == len(list(dropping.epoch(0))) == 2


def test_device_batches_in_order_without_shuffle_and_with_indices() -> None:
    source = DeviceBatches(
        random_data(n=10), torch.tensor([7, 2, 5]), 2, (0.0,) * 3, (1.0,) * 3, CPU, shuffle=False
    )
    assert [y.tolist() for _, y in source.epoch(3)] == [[7, 2], [5]]


def test_normalisation_is_exact() -> None:
    data = random_data(n=6)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    source = DeviceBatches(data, None, 6, mean, std, CPU, shuffle=False)
    x, y = next(iter(source.epoch(0)))
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    assert x.dtype == torch.float32
    assert y.dtype == torch.int64
    assert torch.equal(x, (data.images.float() / 255 - mean_t) / std_t)
    reference = (data.images.double() / 255 - mean_t.double()) / std_t.double()
    assert torch.allclose(x.double(), reference, atol=1e-6)


def test_crop_is_a_window_of_the_zero_padded_image() -> None:
    padding, size = 2, 5
    base = torch.arange(1, 2 * size * size + 1, dtype=torch.uint8).view(1, 2, size, size)
    data = tensors(base.expand(64, -1, -1, -1).contiguous())
    source = device_batches(data, batch_size=64, crop_padding=padding)
    x, _ = next(iter(source.epoch(0)))
    padded = F.pad(base.float() / 255, (padding,) * 4)
    windows = [
        padded[0, :, dy : dy + size, dx : dx + size]
        for dy in range(2 * padding + 1)
        for dx in range(2 * padding + 1)
    ]
    used = {next(i for i, w in enumerate(windows) if torch.equal(sample, w)) for sample in x}
    assert len(used) > 5  # offsets vary per sample


def test_flip_mirrors_about_half_the_samples() -> None:
    data = tensors(random_data(n=1).images.expand(64, -1, -1, -1).contiguous())
    x, _ = next(iter(device_batches(data, batch_size=64, horizontal_flip=True).epoch(0)))
    original = data.images[0].float() / 255
    flipped = [bool(torch.equal(sample, original.flip(-1))) for sample in x]
    kept = [bool(torch.equal(sample, original)) for sample in x]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 0 < sum(flipped) < 64


def test_cutout_zeroes_a_square_after_normalisation() -> None:
    length, size = 4, 12
    data = tensors(torch.full((64, 3, size, size), 255, dtype=torch.uint8))
    source = DeviceBatches(data, None, 64, (0.5,) * 3, (0.25,) * 3, CPU, cutout=length)
    x, _ = next(iter(source.epoch(0)))
    assert set(torch.unique(x).tolist()) == {0.0, 2.0}  # (1 - 0.5) / 0.25 outside the square
    full_squares = 0
    for sample in x:
        cut = sample == 0
        assert torch.equal(cut, cut[:1].expand_as(cut))  # the same square in every channel
        rows = cut[0].any(dim=1).nonzero().flatten()
        cols = cut[0].any(dim=0).nonzero().flatten()
        height, width = len(rows), len(cols)
        assert rows.tolist() == list(range(int(rows[0]), int(rows[0]) + height))
        assert cols.tolist() == list(range(int(cols[0]), int(cols[0]) + width))
        assert int(cut[0].sum()) == height * width  # a filled rectangle
        assert 1 <= height <= length
        assert 1 <= width <= length
        full_squares += height == width == length
    assert full_squares > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_batches_on_cuda_match_their_own_seed() -> None:
    cuda = torch.device("cuda")
    data = random_data(n=50)
    source = DeviceBatches(data, None, 16, (0.5,) * 3, (0.25,) * 3, cuda, 4, True, 3)
    first, second = list(source.epoch(9)), list(source.epoch(9))
    assert all(x.device.type == "cuda" for x, _ in first)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, second, strict=True))


# --- LoaderBatches and make_batch_source -------------------------------------------------


def test_loader_batches_yield_normalised_tensors(image_root: Path) -> None:
    dataset = resolve_dataset(f"imagefolder:{image_root}", image_size=16)
    train: Any = dataset.train
    source = LoaderBatches(
        train, None, 4, dataset.info, CPU, train=True, crop_padding=2, horizontal_flip=True
    )
    batches = list(source.epoch(0))
    assert len(source) == len(batches) == 3
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3, 16, 16)] * 2 + [(1, 3, 16, 16)]
    assert all(x.dtype == torch.float32 and y.dtype == torch.int64 for x, y in batches)
    again = list(source.epoch(0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    other = torch.cat([x for x, _ in source.epoch(1)])
    assert not torch.equal(torch.cat([x for x, _ in batches]), other)


def test_loader_batches_for_evaluation_are_in_order(image_root: Path) -> None:
    dataset = resolve_dataset(f"imagefolder:{image_root}", image_size=8)
    test: Any = dataset.test
    source = LoaderBatches(test, torch.tensor([0, 3, 6]), 2, dataset.info, CPU, False)
    assert [y.tolist() for _, y in source.epoch(0)] == [[0, 1], [2]]


def test_loader_batches_do_not_depend_on_the_number_of_workers(image_root: Path) -> None:
    dataset = resolve_dataset(f"imagefolder:{image_root}", image_size=8)
    train: Any = dataset.train

    def first_epoch(workers: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        source = LoaderBatches(
            train, None, 3, dataset.info, CPU, True, 2, True, num_workers=workers, cutout=2
        )
        return list(source.epoch(7))

    for (x0, y0), (x2, y2) in zip(first_epoch(0), first_epoch(2), strict=True):
        assert torch.equal(x0, x2)
        assert torch.equal(y0, y2)


def test_make_batch_source_picks_by_data_kind(image_root: Path) -> None:
    folder = resolve_dataset(f"imagefolder:{image_root}")
    data = random_data()
    info = DatasetInfo("t", 10, 3, 8, (0.5,) * 3, (0.5,) * 3)
    in_memory = ImageDataset(info, data, data)
    assert isinstance(
        make_batch_source(in_memory.train, None, 2, info, CPU, train=True), DeviceBatches
    )
    assert isinstance(
        make_batch_source(folder.train, None, 2, folder.info, CPU, train=True), LoaderBatches
    )


def test_channel_stats_are_exact_for_known_pixels() -> None:
    images = torch.tensor([0, 255, 0, 255], dtype=torch.uint8).view(1, 1, 2, 2)
    assert channel_stats(images) == ((0.5,), (0.5,))


def test_cifar_reads_python2_pickles_like_the_official_files(tmp_path: Path) -> None:
    written = write_fake_cifar10(tmp_path, n_train_per_batch=2, n_test=3)
    flat = written.x_test.reshape(3, -1)
    labels = [int(label) for label in written.y_test]
    batch = python2_cifar_batch(flat, labels, b"labels")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(batch)
    test = resolve_dataset("cifar10", data_dir=tmp_path).test
    assert isinstance(test, ImageTensors)
    assert np.array_equal(test.images.numpy(), written.x_test)
    assert test.labels.tolist() == labels


def test_imagenet_folders_get_the_darts_imagenet_transforms(tmp_path: Path) -> None:
    write_fake_imagefolder(tmp_path / "imagenet", classes=["a", "b"], per_class=2, size=40)
    data = resolve_dataset("imagenet", data_dir=tmp_path)
    assert data.info.image_size == 224
    assert data.info.augmentation == "imagenet"
    train = loader_transform(data.info, True, 0, False)
    test = loader_transform(data.info, False, 0, False)
    names = [type(t).__name__ for t in train.transforms]  # type: ignore[attr-defined]
    assert names[:3] == ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter"]
    assert [type(t).__name__ for t in test.transforms][:2] == ["Resize", "CenterCrop"]  # type: ignore[attr-defined]
    image, _ = data.test[0]
    assert test(image).shape == (3, 224, 224)


def test_rank_shares_of_a_batch_make_up_the_single_process_batch() -> None:
    data = random_data(n=50)
    info = DatasetInfo("r", 3, 3, 8, (0.5,) * 3, (0.25,) * 3)
    cpu = torch.device("cpu")
    options = {"train": True, "crop_padding": 2, "horizontal_flip": True, "cutout": 3}
    whole = make_batch_source(data, None, 16, info, cpu, **options)
    shares = [
        make_batch_source(data, None, 8, info, cpu, rank=r, world_size=2, **options) for r in (0, 1)
    ]
    assert len(shares[0]) == len(shares[1]) == len(whole)
    for (x, y), (x0, y0), (x1, y1) in zip(
        whole.epoch(3), shares[0].epoch(3), shares[1].epoch(3), strict=True
    ):
        assert torch.equal(x[0::2], x0)
        assert torch.equal(x[1::2], x1)
        assert torch.equal(torch.sort(torch.cat([y0, y1])).values, torch.sort(y).values)


def test_loader_ranks_split_an_epoch_between_them(tmp_path: Path) -> None:
    write_fake_imagefolder(tmp_path / "f", classes=["a", "b"], per_class=5, size=8)
    data = resolve_dataset(f"imagefolder:{tmp_path / 'f'}", image_size=8)
    cpu = torch.device("cpu")
    seen = []
    for rank in (0, 1):
        source = make_batch_source(
            data.train, None, 2, data.info, cpu, train=True, rank=rank, world_size=2
        )
        assert len(source) == 3  # 10 images, 5 per rank, batches of 2
        seen.append(sum(int(y.numel()) for _, y in source.epoch(7)))
    assert seen == [5, 5]
