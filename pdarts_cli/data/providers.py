"""Built-in dataset providers, declared under the ``pdarts.datasets`` entry-point group.

Each provider turns a ``DatasetRequest`` into an ``ImageDataset`` and reports every problem a
user can fix (missing files, malformed arrays, a forgotten path) as one ``DatasetError`` line
that says what was wrong and where. The first line of each provider's docstring is what
``pdarts datasets list`` shows.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import importlib
import pickle
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdarts_cli.data.base import DatasetInfo, DatasetRequest, ImageDataset, ImageTensors
from pdarts_cli.errors import DatasetError

PIXEL_LEVELS = 256  # distinct uint8 values
CIFAR_IMAGE_SIZE = 32
CIFAR_CHANNELS = 3
CIFAR_ROW_BYTES = CIFAR_CHANNELS * CIFAR_IMAGE_SIZE * CIFAR_IMAGE_SIZE  # R plane, G, then B
# ImageNet statistics, the usual normalisation for photographs of unknown origin.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FOLDER_CHANNELS = 3  # ImageFolder converts every image to RGB
FOLDER_SPLITS = ("train", "val")
FOLDER_DEFAULT_IMAGE_SIZE = 32  # pixels; the CIFAR size the search schedules are tuned for
DIGITS_MAX_VALUE = 16  # scikit-learn's digits count pixels on in a 4 x 4 block: 0..16
DIGITS_TEST_EVERY = 5  # image i is a test image when i % 5 == 4: a fixed fifth held out
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
DATA_DIR_ENV = "PDARTS_DATA"  # named in messages; pdarts_cli.data reads it


def _one_line(text: str) -> str:
    """Collapse a message onto one line: the CLI prints a DatasetError as a single line."""
    return " ".join(text.split())


def _no_argument(request: DatasetRequest) -> None:
    """Datasets at a fixed place refuse ``name:something`` rather than ignore it."""
    if request.argument is not None:
        raise DatasetError(
            f"{request.name} takes no argument, got {request.name}:{request.argument}"
        )


def _argument_path(request: DatasetRequest) -> Path:
    if not request.argument:
        raise DatasetError(f"{request.name} needs a path: {request.name}:PATH")
    return Path(request.argument).expanduser()


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 N x C x H x W images, on the [0, 1] scale.

    Counting the 256 pixel levels per channel is exact and needs one histogram of memory
    instead of a float copy of the whole dataset.
    """
    levels = torch.arange(PIXEL_LEVELS, dtype=torch.float64) / (PIXEL_LEVELS - 1)
    means: list[float] = []
    stds: list[float] = []
    for channel in range(int(images.shape[1])):
        pixels = images[:, channel].reshape(-1)
        counts = torch.bincount(pixels, minlength=PIXEL_LEVELS).to(torch.float64)
        mean = (counts * levels).sum() / counts.sum()
        variance = (counts * (levels - mean) ** 2).sum() / counts.sum()
        means.append(float(mean))
        stds.append(float(variance.sqrt()))
    return tuple(means), tuple(stds)


# --- CIFAR ------------------------------------------------------------------------------


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
        raise DatasetError(_one_line(f"cannot read {path}: {exc}")) from exc
    except Exception as exc:  # whatever a damaged or hostile pickle raises, it is a bad file
        raise DatasetError(
            _one_line(f"{path} is corrupt or not a CIFAR batch file: {type(exc).__name__}: {exc}")
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
            _one_line(
                f"could not download {layout.name} into {root} ({reason}); {_by_hand(layout, root)}"
            )
        ) from exc


def _load_cifar(layout: CifarLayout, request: DatasetRequest) -> ImageDataset:
    _no_argument(request)
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


# --- digits -----------------------------------------------------------------------------


def _digit_images() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetError('digits needs scikit-learn: pip install "pdarts[digits]"') from exc
    bunch = load_digits()
    pixels = np.rint(bunch.images * 255 / DIGITS_MAX_VALUE).astype(np.uint8)
    return pixels, np.asarray(bunch.target, dtype=np.int64)


def digits(request: DatasetRequest) -> ImageDataset:
    """Handwritten digits from scikit-learn: 1,797 grey 8x8 images, 10 classes, offline.

    Bundled with scikit-learn, so a first run needs no download. Pixel counts 0..16 are scaled
    to 0..255 (``round(x * 255 / 16)``). The split is fixed, so every run compares alike:
    image ``i`` is a test image when ``i % 5 == 4`` (359 images), the other 1,438 train.
    Mean and std come from the training images.
    """
    _no_argument(request)
    pixels, labels = _digit_images()
    is_test = np.arange(len(labels)) % DIGITS_TEST_EVERY == DIGITS_TEST_EVERY - 1
    images = torch.from_numpy(pixels[:, None])  # N x 1 x 8 x 8
    targets = torch.from_numpy(labels)
    test_mask = torch.from_numpy(is_test)
    train = ImageTensors(images[~test_mask], targets[~test_mask])
    test = ImageTensors(images[test_mask], targets[test_mask])
    mean, std = channel_stats(train.images)
    info = DatasetInfo(
        name=request.name,
        num_classes=int(labels.max()) + 1,
        channels=1,
        image_size=int(pixels.shape[-1]),
        mean=mean,
        std=std,
    )
    return ImageDataset(info, train, test)


# --- npz --------------------------------------------------------------------------------


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    if not path.is_file():
        raise DatasetError(f"npz file {path} not found")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(_one_line(f"cannot read {path} as .npz: {exc}")) from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path} is not an .npz archive (it holds a single array)")
    return loaded


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with _open_npz(path) as archive:
        missing = [key for key in NPZ_KEYS if key not in archive.files]
        if missing:
            raise DatasetError(f"{path} lacks {', '.join(missing)} (needs {', '.join(NPZ_KEYS)})")
        try:
            return {key: archive[key] for key in NPZ_KEYS}
        # A damaged member, or an object array that would need pickle to load.
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise DatasetError(_one_line(f"cannot read {path} as .npz: {exc}")) from exc


def _npz_images(path: Path, key: str, array: np.ndarray) -> torch.Tensor:
    """uint8 NHWC (or grey NHW) to N x C x H x W."""
    if array.dtype != np.uint8:
        raise DatasetError(f"{path}: {key} is {array.dtype}, expected uint8 (0..255)")
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[1] != array.shape[2]:
        raise DatasetError(
            f"{path}: {key} has shape {array.shape}, expected square N x H x W x C or N x H x W"
        )
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def _npz_labels(path: Path, key: str, array: np.ndarray, count: int) -> torch.Tensor:
    if not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{path}: {key} is {array.dtype}, expected integer class labels")
    if array.shape != (count,):
        raise DatasetError(f"{path}: {key} has shape {array.shape}, expected ({count},)")
    if count and array.min() < 0:
        raise DatasetError(f"{path}: {key} holds negative labels")
    return torch.from_numpy(array.astype(np.int64))


def _npz_split(path: Path, arrays: dict[str, np.ndarray], split: str) -> ImageTensors:
    images = _npz_images(path, f"x_{split}", arrays[f"x_{split}"])
    if images.shape[0] == 0:
        raise DatasetError(f"{path}: x_{split} holds no images")
    labels = _npz_labels(path, f"y_{split}", arrays[f"y_{split}"], int(images.shape[0]))
    return ImageTensors(images, labels)


def npz(request: DatasetRequest) -> ImageDataset:
    """Images from a NumPy archive, npz:PATH (x_train, y_train, x_test, y_test; uint8 NHWC).

    Images are uint8 N x H x W x C (or N x H x W for grey), square; labels are integers.
    Read with ``allow_pickle=False``, so the file cannot run code. The number of classes is
    the largest label of either split plus one; mean and std come from the training images.
    """
    path = _argument_path(request)
    arrays = _read_npz(path)
    train = _npz_split(path, arrays, "train")
    test = _npz_split(path, arrays, "test")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DatasetError(
            f"{path}: x_train images are {tuple(train.images.shape[1:])} (C, H, W) but x_test "
            f"images are {tuple(test.images.shape[1:])}"
        )
    mean, std = channel_stats(train.images)
    if 0.0 in std:
        raise DatasetError(
            f"{path}: channel {std.index(0.0)} of x_train is constant, so it cannot be normalised"
        )
    info = DatasetInfo(
        name=f"{request.name}:{path}",
        num_classes=int(torch.cat([train.labels, test.labels]).max()) + 1,
        channels=int(train.images.shape[1]),
        image_size=int(train.images.shape[2]),
        mean=mean,
        std=std,
    )
    return ImageDataset(info, train, test)


# --- imagefolder ------------------------------------------------------------------------


def _check_split_folders(root: Path) -> None:
    """Both folders must exist before either is scanned, which can take long on big sets."""
    for split in FOLDER_SPLITS:
        if not (root / split).is_dir():
            raise DatasetError(
                f"{root / split} is not a folder; imagefolder:PATH expects PATH/train/<class>/* "
                "and PATH/val/<class>/*"
            )


def _image_folder(folder: Path) -> Any:
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as exc:  # no class folders, or a class without images
        raise DatasetError(_one_line(f"{folder}: {exc}")) from exc


def _check_same_classes(root: Path, train: list[str], val: list[str]) -> None:
    if train == val:
        return
    only_train = sorted(set(train) - set(val)) or ["-"]
    only_val = sorted(set(val) - set(train)) or ["-"]
    raise DatasetError(
        f"imagefolder {root}: train/ and val/ hold different classes "
        f"(only in train: {', '.join(only_train)}; only in val: {', '.join(only_val)})"
    )


IMAGENET_IMAGE_SIZE = 224  # the mobile setting


def imagenet(request: DatasetRequest) -> ImageDataset:
    """ImageNet as class folders: imagenet[:PATH] (default DATA_DIR/imagenet), 224x224.

    PATH/train/<class>/* and PATH/val/<class>/*, read lazily, with the DARTS ImageNet
    augmentation (random-resized crop, flip, colour jitter; resize 256 and centre crop).
    """
    folder = request.argument or str(request.data_dir / "imagenet")
    size = request.image_size or IMAGENET_IMAGE_SIZE
    resolved = dataclasses.replace(request, argument=folder, image_size=size)
    data = imagefolder(resolved)
    info = dataclasses.replace(data.info, name=f"imagenet:{folder}", augmentation="imagenet")
    return ImageDataset(info, data.train, data.test)


def imagefolder(request: DatasetRequest) -> ImageDataset:
    """Images on disk, imagefolder:PATH with PATH/train/<class>/* and PATH/val/<class>/*.

    Images are read lazily (torchvision ``ImageFolder``, converted to RGB) and resized to the
    requested image size (32 by default), normalised with ImageNet's mean and std. Class
    indices follow the sorted class-folder names of ``train/``; ``val/`` must hold the same.
    """
    root = _argument_path(request)
    image_size = FOLDER_DEFAULT_IMAGE_SIZE if request.image_size is None else request.image_size
    if image_size < 1:
        raise DatasetError(f"image size must be a positive number of pixels, got {image_size}")
    _check_split_folders(root)
    train = _image_folder(root / "train")
    test = _image_folder(root / "val")
    _check_same_classes(root, list(train.classes), list(test.classes))
    info = DatasetInfo(
        name=f"{request.name}:{root}",
        num_classes=len(train.classes),
        channels=FOLDER_CHANNELS,
        image_size=image_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )
    return ImageDataset(info, train, test)
