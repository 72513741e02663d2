"""Small fake datasets on disk, in the real formats, for tests (not a test module).

The CIFAR writers produce torchvision's on-disk layout: pickled dicts with bytes keys, a
``b"data"`` uint8 N x 3072 array (R plane, G plane, B plane of a 32 x 32 image) and labels as a
list of ints. Each writer returns what it wrote, so a test can compare pixel for pixel.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

CIFAR_SIZE = 32
CIFAR_CHANNELS = 3


class Splits(NamedTuple):
    """What a writer put on disk: images N x C x H x W uint8 and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _images(rng: np.random.Generator, n: int, channels: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, channels, size, size), dtype=np.uint8)


def _balanced_labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    """Every class as often as ``n`` allows, in random order, so class counts are known."""
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def _cifar_splits(n_train: int, n_test: int, num_classes: int, seed: int) -> Splits:
    rng = np.random.default_rng(seed)
    return Splits(
        _images(rng, n_train, CIFAR_CHANNELS, CIFAR_SIZE),
        _balanced_labels(rng, n_train, num_classes),
        _images(rng, n_test, CIFAR_CHANNELS, CIFAR_SIZE),
        _balanced_labels(rng, n_test, num_classes),
    )


def _dump(path: Path, content: Mapping[bytes, object]) -> None:
    with path.open("wb") as file:
        pickle.dump(content, file)


def _cifar_batch(images: np.ndarray, labels: np.ndarray, label_key: bytes) -> dict[bytes, object]:
    return {
        b"batch_label": b"fake batch",
        b"data": images.reshape(len(images), -1),
        label_key: [int(label) for label in labels],
        b"filenames": [f"fake_{i}.png".encode() for i in range(len(images))],
    }


def write_fake_cifar10(
    root: Path, n_train_per_batch: int = 20, n_test: int = 20, seed: int = 0
) -> Splits:
    """``root/cifar-10-batches-py`` with five training batches, a test batch and the meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    splits = _cifar_splits(5 * n_train_per_batch, n_test, 10, seed)
    for i in range(5):
        part = slice(i * n_train_per_batch, (i + 1) * n_train_per_batch)
        batch = _cifar_batch(splits.x_train[part], splits.y_train[part], b"labels")
        _dump(folder / f"data_batch_{i + 1}", batch)
    _dump(folder / "test_batch", _cifar_batch(splits.x_test, splits.y_test, b"labels"))
    meta = {
        b"label_names": [f"class{i}".encode() for i in range(10)],
        b"num_cases_per_batch": n_train_per_batch,
        b"num_vis": CIFAR_SIZE * CIFAR_SIZE * CIFAR_CHANNELS,
    }
    _dump(folder / "batches.meta", meta)
    return splits


def write_fake_cifar100(root: Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Splits:
    """``root/cifar-100-python`` with ``train``, ``test`` and ``meta``."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    splits = _cifar_splits(n_train, n_test, 100, seed)
    for name, images, labels in (
        ("train", splits.x_train, splits.y_train),
        ("test", splits.x_test, splits.y_test),
    ):
        batch = _cifar_batch(images, labels, b"fine_labels")
        batch[b"coarse_labels"] = [int(label) // 5 for label in labels]
        _dump(folder / name, batch)
    meta = {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    }
    _dump(folder / "meta", meta)
    return splits


def write_fake_npz(
    path: Path,
    n_train: int = 40,
    n_test: int = 12,
    size: int = 8,
    channels: int | None = 3,
    num_classes: int = 4,
    seed: int = 0,
) -> Splits:
    """An .npz with uint8 NHWC images (NHW when ``channels`` is None) and int64 labels.

    Returns the images as N x C x H x W, the layout the provider hands back.
    """
    rng = np.random.default_rng(seed)
    splits = Splits(
        _images(rng, n_train, channels or 1, size),
        _balanced_labels(rng, n_train, num_classes),
        _images(rng, n_test, channels or 1, size),
        _balanced_labels(rng, n_test, num_classes),
    )

    def stored(images: np.ndarray) -> np.ndarray:
        return images[:, 0] if channels is None else images.transpose(0, 2, 3, 1)

    np.savez(
        path,
        x_train=stored(splits.x_train),
        y_train=splits.y_train,
        x_test=stored(splits.x_test),
        y_test=splits.y_test,
    )
    return splits


def write_fake_imagefolder(
    root: Path, classes: list[str], per_class: int, size: int, seed: int = 0
) -> None:
    """``root/{train,val}/<class>/<i>.png``: random RGB squares of ``size`` pixels."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def _short_string(text: bytes) -> bytes:
    """Pickle opcode SHORT_BINSTRING: a Python 2 ``str``, read back as bytes."""
    return b"U" + bytes([len(text)]) + text


def python2_cifar_batch(images: np.ndarray, labels: list[int], label_key: bytes) -> bytes:
    """A batch pickled the way the official files were: Python 2, protocol 2, numpy 1.x.

    Python 3 cannot write this form (its bytes pickle through ``_codecs.encode``), so the
    opcodes are spelled out: ``numpy.core.multiarray._reconstruct`` rebuilds an empty array
    and BUILD sets (version, shape, dtype, fortran order, raw bytes) on it.
    """
    rows, columns = images.shape
    raw = np.ascontiguousarray(images, dtype=np.uint8).tobytes()
    dtype = [
        b"cnumpy\ndtype\n" + _short_string(b"u1") + b"K\x00K\x01\x87R",  # dtype("u1", 0, 1)
        b"(K\x03" + _short_string(b"|") + b"NNN",  # state: version 3, no byte order, ...
        b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb",  # ... elsize -1, alignment -1, flags 0
    ]
    array = [
        b"cnumpy.core.multiarray\n_reconstruct\n",
        b"cnumpy\nndarray\nK\x00\x85" + _short_string(b"b") + b"\x87R",  # (ndarray, (0,), "b")
        b"(K\x01",  # state version 1
        b"K" + bytes([rows]) + b"M" + columns.to_bytes(2, "little") + b"\x86",  # shape
        *dtype,
        b"\x89",  # not Fortran order
        b"T" + len(raw).to_bytes(4, "little") + raw,  # the pixels, a Python 2 str
        b"tb",
    ]
    label_list = [b"](", *(b"K" + bytes([label]) for label in labels), b"e"]
    return b"".join(
        [
            b"\x80\x02}(",  # protocol 2, a dict, its items follow
            _short_string(b"data"),
            *array,
            _short_string(label_key),
            *label_list,
            b"u.",  # set the items, stop
        ]
    )
