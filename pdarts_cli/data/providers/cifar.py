"""CIFAR-10 and CIFAR-100, read from torchvision's on-disk layout without plain ``pickle``."""

from __future__ import annotations

import functools
import http.client
import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pdarts_cli.data.base import DatasetInfo, DatasetRequest, ImageDataset, ImageTensors
from pdarts_cli.data.providers.common import no_argument, one_line
from pdarts_cli.data.resolve import DATA_DIR_ENV
from pdarts_cli.errors import DatasetError

if TYPE_CHECKING:
    pass

CIFAR_IMAGE_SIZE = 32
CIFAR_CHANNELS = 3
CIFAR_ROW_BYTES = CIFAR_CHANNELS * CIFAR_IMAGE_SIZE * CIFAR_IMAGE_SIZE  # R plane, G, then B


@dataclass(frozen=True)
class CifarLayout:
    """Where torchvision's extracted archive keeps one CIFAR variant, and how to read it."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    torchvision_class: str  # supplies the archive's URL and md5


CIFAR10 = CifarLayout(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    label_key=b"labels",
    num_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    torchvision_class="CIFAR10",
)
CIFAR100 = CifarLayout(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    label_key=b"fine_labels",
    num_classes=100,
    mean=(0.5071, 0.4867, 0.4408),
    std=(0.2675, 0.2565, 0.2761),
    torchvision_class="CIFAR100",
)


def _numpy_attribute(modules: tuple[str, ...], name: str) -> Any:
    """``name`` from the first module that exists: numpy 2 renamed ``numpy.core`` to ``_core``."""
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {name} in {', '.join(modules)}")


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR batch file may name: what rebuilds a numpy array.

    The official files (Python 2 pickles) need ``_reconstruct``, ``ndarray`` and ``dtype``;
    ``_frombuffer`` is how numpy pickles arrays at protocol 5, should a user re-save them.
    """
    multiarray = ("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = ("numpy._core.numeric", "numpy.core.numeric")
    reconstruct = _numpy_attribute(multiarray, "_reconstruct")
    frombuffer = _numpy_attribute(numeric, "_frombuffer")
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for module in multiarray:
        allowed[(module, "_reconstruct")] = reconstruct
    for module in numeric:
        allowed[(module, "_frombuffer")] = frombuffer
    return allowed


class ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and plain containers, and nothing else.

    A pickle can name any importable callable (``os.system``) and call it while loading;
    refusing every global but numpy's array constructors means a tampered file cannot run code.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return allowed[(module, name)]


def _unpickle_arrays(path: Path) -> object:
    try:
        with path.open("rb") as file:
            return ArrayOnlyUnpickler(file, encoding="bytes").load()
    except OSError as exc:
        raise DatasetError(one_line(f"cannot read {path}: {exc}")) from exc
    except Exception as exc:  # whatever a damaged or hostile pickle raises, it is a bad file
        raise DatasetError(
            one_line(f"{path} is corrupt or not a CIFAR batch file: {type(exc).__name__}: {exc}")
        ) from exc


def _read_cifar_batch(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 3072 uint8) and labels (int64) of one batch file, checked."""
    batch = _unpickle_arrays(path)

    def bad(problem: str) -> DatasetError:
        return DatasetError(f"{path} is not a valid {layout.name} batch file: {problem}")

    if not isinstance(batch, dict):
        raise bad(f"holds a {type(batch).__name__}, not a dict")
    data = batch.get(b"data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise bad("b'data' is not a 2-D uint8 array")
    if data.shape[1] != CIFAR_ROW_BYTES:
        raise bad(f"b'data' rows hold {data.shape[1]} bytes, not {CIFAR_ROW_BYTES}")
    try:
        labels = np.asarray(batch.get(layout.label_key), dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise bad(f"{layout.label_key!r} is not a list of integers") from exc
    if labels.shape != (data.shape[0],):
        raise bad(f"{layout.label_key!r} does not hold one label per image")
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise bad(f"labels outside 0..{layout.num_classes - 1}")
    return data, labels


def _read_cifar_split(folder: Path, files: tuple[str, ...], layout: CifarLayout) -> ImageTensors:
    import torch  # here, not at the top: listing providers must not load torch

    batches = [_read_cifar_batch(folder / name, layout) for name in files]
    data = np.concatenate([images for images, _ in batches])  # a fresh, writable copy
    labels = np.concatenate([labels for _, labels in batches])
    shape = (-1, CIFAR_CHANNELS, CIFAR_IMAGE_SIZE, CIFAR_IMAGE_SIZE)
    return ImageTensors(torch.from_numpy(data.reshape(shape)), torch.from_numpy(labels))


def _missing_files(folder: Path, layout: CifarLayout) -> list[str]:
    names = layout.train_files + layout.test_files
    return [name for name in names if not (folder / name).is_file()]


def _torchvision_source(layout: CifarLayout) -> Any:
    """torchvision's dataset class for ``layout``: its ``url``, ``filename`` and ``tgz_md5``
    name the official archive, so they are never copied here to drift."""
    from torchvision import datasets

    return getattr(datasets, layout.torchvision_class)


def _by_hand(layout: CifarLayout, root: Path) -> str:
    """How to put the data in place without ``--download``: the archive's URL and md5, and
    the file whose presence shows it was unpacked in the right folder."""
    source = _torchvision_source(layout)
    marker = root / layout.folder / layout.train_files[0]
    return (
        f"download {source.url} (md5 {source.tgz_md5}) and unpack it into {root} "
        f"so that {marker} exists"
    )


def _how_to_get(layout: CifarLayout, root: Path) -> str:
    return (
        f"run with --download when online, or {_by_hand(layout, root)}; "
        f"--data-dir / ${DATA_DIR_ENV} choose another folder"
    )


def _fetch_cifar(layout: CifarLayout, root: Path) -> None:
    """Download and extract the official archive; torchvision checks its md5.

    Only the download is torchvision's: reading stays with ``ArrayOnlyUnpickler``, so no
    file is ever passed to plain ``pickle.load``. Offline, the error says how to fetch the
    archive by hand instead.
    """
    from torchvision.datasets import utils

    source = _torchvision_source(layout)
    try:
        utils.download_and_extract_archive(
            source.url, str(root), filename=source.filename, md5=source.tgz_md5
        )
    # No network (URLError is an OSError), a dropped connection, disk full, or md5 mismatch.
    except (OSError, RuntimeError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DatasetError(
            one_line(
                f"could not download {layout.name} into {root} ({reason}); {_by_hand(layout, root)}"
            )
        ) from exc


def _load_cifar(layout: CifarLayout, request: DatasetRequest) -> ImageDataset:
    no_argument(request)
    root = request.data_dir.expanduser()
    folder = root / layout.folder
    if request.download and _missing_files(folder, layout):
        _fetch_cifar(layout, root)
    missing = _missing_files(folder, layout)
    if len(missing) == len(layout.train_files + layout.test_files):
        raise DatasetError(f"{layout.name} not found in {folder}: {_how_to_get(layout, root)}")
    if missing:
        raise DatasetError(
            f"{layout.name} incomplete in {folder} (missing {', '.join(missing)}): "
            f"{_how_to_get(layout, root)}"
        )
    info = DatasetInfo(
        name=layout.name,
        num_classes=layout.num_classes,
        channels=CIFAR_CHANNELS,
        image_size=CIFAR_IMAGE_SIZE,
        mean=layout.mean,
        std=layout.std,
    )
    train = _read_cifar_split(folder, layout.train_files, layout)
    test = _read_cifar_split(folder, layout.test_files, layout)
    return ImageDataset(info, train, test)


def cifar10(request: DatasetRequest) -> ImageDataset:
    """CIFAR-10: 50,000 train + 10,000 test colour images, 32x32, 10 classes (--download).

    Read from torchvision's layout, ``<data_dir>/cifar-10-batches-py``.
    """
    return _load_cifar(CIFAR10, request)


def cifar100(request: DatasetRequest) -> ImageDataset:
    """CIFAR-100: 50,000 train + 10,000 test colour images, 32x32, 100 classes (--download).

    Read from torchvision's layout, ``<data_dir>/cifar-100-python``; labels are the 100 fine
    labels.
    """
    return _load_cifar(CIFAR100, request)
