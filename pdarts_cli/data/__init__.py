"""Datasets: resolve ``name[:argument]`` to a provider's ``ImageDataset``, and batch it.

The modules, in the order data flows through them:

- ``base``: the provider contract (``DatasetRequest`` -> ``ImageDataset``) and ``BatchSource``.
- ``resolve``: a spec to a dataset, through the ``pdarts.datasets`` entry points.
- ``providers``: the built-in providers, one module per source.
- ``in_memory``: a caller's own tensors or torch ``Dataset`` as an ``ImageDataset``.
- ``split``: the weight/alpha (or train/validation) split of a training set.
- ``batches``: one epoch of model-ready batches, with ``augment`` (on-device augmentation)
  and ``transforms`` (torchvision transforms for datasets on disk).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pdarts_cli.lazy import lazy_exports

if TYPE_CHECKING:
    from pdarts_cli.data.base import (
        BatchSource,
        DatasetInfo,
        DatasetRequest,
        ImageDataset,
        ImageTensors,
    )
    from pdarts_cli.data.batches import DeviceBatches, LoaderBatches, make_batch_source
    from pdarts_cli.data.in_memory import InMemoryData, as_image_dataset
    from pdarts_cli.data.resolve import (
        DATA_DIR_ENV,
        default_data_dir,
        parse_dataset_spec,
        resolve_dataset,
    )
    from pdarts_cli.data.split import (
        SplitChoice,
        SplitMethod,
        dataset_labels,
        resolve_split,
        split_dataset,
        split_indices,
        stratified_split_indices,
    )

# public name -> the module that defines it (loaded on first use: the providers, and so
# `pdarts datasets list`, need no torch)
_EXPORTS = {
    "BatchSource": "pdarts_cli.data.base",
    "DatasetInfo": "pdarts_cli.data.base",
    "DatasetRequest": "pdarts_cli.data.base",
    "ImageDataset": "pdarts_cli.data.base",
    "ImageTensors": "pdarts_cli.data.base",
    "DeviceBatches": "pdarts_cli.data.batches",
    "LoaderBatches": "pdarts_cli.data.batches",
    "make_batch_source": "pdarts_cli.data.batches",
    "InMemoryData": "pdarts_cli.data.in_memory",
    "as_image_dataset": "pdarts_cli.data.in_memory",
    "DATA_DIR_ENV": "pdarts_cli.data.resolve",
    "default_data_dir": "pdarts_cli.data.resolve",
    "parse_dataset_spec": "pdarts_cli.data.resolve",
    "resolve_dataset": "pdarts_cli.data.resolve",
    "SplitChoice": "pdarts_cli.data.split",
    "SplitMethod": "pdarts_cli.data.split",
    "dataset_labels": "pdarts_cli.data.split",
    "resolve_split": "pdarts_cli.data.split",
    "split_dataset": "pdarts_cli.data.split",
    "split_indices": "pdarts_cli.data.split",
    "stratified_split_indices": "pdarts_cli.data.split",
}

__all__ = [
    "DATA_DIR_ENV",
    "BatchSource",
    "DatasetInfo",
    "DatasetRequest",
    "DeviceBatches",
    "ImageDataset",
    "ImageTensors",
    "InMemoryData",
    "LoaderBatches",
    "SplitChoice",
    "SplitMethod",
    "as_image_dataset",
    "dataset_labels",
    "default_data_dir",
    "make_batch_source",
    "parse_dataset_spec",
    "resolve_dataset",
    "resolve_split",
    "split_dataset",
    "split_indices",
    "stratified_split_indices",
]

__getattr__ = lazy_exports(globals(), _EXPORTS)
