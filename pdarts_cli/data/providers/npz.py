"""Images from a NumPy ``.npz`` archive, read without pickle."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pdarts_cli.data.base import DatasetInfo, DatasetRequest, ImageDataset, ImageTensors
from pdarts_cli.data.providers.common import argument_path, one_line
from pdarts_cli.data.stats import split_stats
from pdarts_cli.errors import DatasetError

if TYPE_CHECKING:
    import torch

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    if not path.is_file():
        raise DatasetError(f"npz file {path} not found")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(one_line(f"cannot read {path} as .npz: {exc}")) from exc
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
            raise DatasetError(one_line(f"cannot read {path} as .npz: {exc}")) from exc


def _npz_images(path: Path, key: str, array: np.ndarray) -> torch.Tensor:
    """uint8 NHWC (or grey NHW) to N x C x H x W."""
    import torch  # here, not at the top: listing providers must not load torch

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
    import torch  # here, not at the top: listing providers must not load torch

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
    import torch  # here, not at the top: listing providers must not load torch

    path = argument_path(request)
    arrays = _read_npz(path)
    train = _npz_split(path, arrays, "train")
    test = _npz_split(path, arrays, "test")
    names = ("x_train", "x_test")
    mean, std = split_stats(train.images, test.images, names, "x_train", f"{path}: ")
    info = DatasetInfo(
        name=f"{request.name}:{path}",
        num_classes=int(torch.cat([train.labels, test.labels]).max()) + 1,
        channels=int(train.images.shape[1]),
        image_size=int(train.images.shape[2]),
        mean=mean,
        std=std,
    )
    return ImageDataset(info, train, test)
