"""Published genotypes, by the names the papers' code gives them: a zoo a command can name
instead of a file."""

from __future__ import annotations

from collections.abc import Callable

from pdarts_cli.genotype.model import Genotype


def _published(
    normal: list[tuple[str, int]], reduce: list[tuple[str, int]], source: str
) -> Genotype:
    concat = (2, 3, 4, 5)
    return Genotype(tuple(normal), concat, tuple(reduce), concat, meta={"source": source})


ZOO: dict[str, Callable[[], Genotype]] = {
    "PDARTS": lambda: _published(
        [
            ("skip_connect", 0),
            ("dil_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 3),
            ("sep_conv_3x3", 0),
            ("dil_conv_5x5", 4),
        ],
        [
            ("avg_pool_3x3", 0),
            ("sep_conv_5x5", 1),
            ("sep_conv_3x3", 0),
            ("dil_conv_5x5", 2),
            ("max_pool_3x3", 0),
            ("dil_conv_3x3", 1),
            ("dil_conv_3x3", 1),
            ("dil_conv_5x5", 3),
        ],
        "Chen et al., P-DARTS, ICCV 2019 (CIFAR-10 search)",
    ),
    "DARTS_V2": lambda: _published(
        [
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("skip_connect", 0),
            ("dil_conv_3x3", 2),
        ],
        [
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
        ],
        "Liu et al., DARTS, ICLR 2019 (second order)",
    ),
    "DARTS_V1": lambda: _published(
        [
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 2),
        ],
        [
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("avg_pool_3x3", 0),
        ],
        "Liu et al., DARTS, ICLR 2019 (first order)",
    ),
}
