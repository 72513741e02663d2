"""scikit-learn's handwritten digits: a small grey dataset that needs no download."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pdarts_cli.data.base import DatasetInfo, DatasetRequest, ImageDataset, ImageTensors
from pdarts_cli.data.providers.common import no_argument
from pdarts_cli.data.stats import channel_stats
from pdarts_cli.errors import DatasetError

if TYPE_CHECKING:
    pass

DIGITS_MAX_VALUE = 16  # scikit-learn's digits count pixels on in a 4 x 4 block: 0..16
DIGITS_TEST_EVERY = 5  # image i is a test image when i % 5 == 4: a fixed fifth held out


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
    import torch  # here, not at the top: listing providers must not load torch

    no_argument(request)
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
