"""Built-in dataset providers, declared under the ``pdarts.datasets`` entry-point group.

One module per source: ``cifar`` (cifar10, cifar100), ``digits``, ``npz`` and ``imagefolder``
(imagefolder, imagenet); ``common`` holds what they share. The entry points name the providers
through this package, so a module can move without changing the installed metadata.

Each provider turns a ``DatasetRequest`` into an ``ImageDataset`` and reports every problem a
user can fix (missing files, malformed arrays, a forgotten path) as one ``DatasetError`` line
that says what was wrong and where. The first line of each provider's docstring is what
``pdarts datasets list`` shows.
"""

from __future__ import annotations

from pdarts_cli.data.providers.cifar import cifar10, cifar100
from pdarts_cli.data.providers.digits import digits
from pdarts_cli.data.providers.imagefolder import imagefolder, imagenet
from pdarts_cli.data.providers.npz import npz

__all__ = ["cifar10", "cifar100", "digits", "imagefolder", "imagenet", "npz"]
