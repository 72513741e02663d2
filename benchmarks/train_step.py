"""Time training steps of an evaluation network (forward, backward, SGD step); print JSON.

    python benchmarks/train_step.py --genotype PDARTS --recipe paper-cifar --device cuda \
        --amp bf16 --channels-last on

Synthetic 32x32 (or the recipe's ImageNet size) data; the first steps are a warm-up.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from pdarts_cli.data import DatasetInfo
from pdarts_cli.device import resolve_channels_last, resolve_device, resolve_precision
from pdarts_cli.genotype import load_genotype
from pdarts_cli.training.recipe import load_recipe
from pdarts_cli.training.setup import build_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genotype", default="PDARTS")
    parser.add_argument("--recipe", default="paper-cifar")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="off", choices=["auto", "off", "bf16", "fp16"])
    parser.add_argument("--channels-last", default="off", choices=["auto", "on", "off"])
    args = parser.parse_args()

    recipe = load_recipe(args.recipe).with_overrides(batch_size=args.batch_size)
    device = resolve_device(args.device)
    precision = resolve_precision(args.amp, device)
    channels_last = resolve_channels_last(args.channels_last, device)
    size = 224 if recipe.network == "imagenet" else 32
    classes = 1000 if recipe.network == "imagenet" else 10
    info = DatasetInfo("synthetic", classes, 3, size, (0.5,) * 3, (0.25,) * 3)
    model = build_network(load_genotype(args.genotype), recipe, info).to(device)
    model.drop_path_prob = recipe.drop_path_prob  # type: ignore[assignment]
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(recipe.batch_size, 3, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (recipe.batch_size,), device=device)

    def step() -> None:
        with precision.autocast():
            logits, aux = model(x)
        loss = F.cross_entropy(logits.float(), y)
        if aux is not None:
            loss = loss + recipe.auxiliary_weight * F.cross_entropy(aux.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / args.steps
    result = {
        "genotype": args.genotype,
        "recipe": recipe.name,
        "batch_size": recipe.batch_size,
        "device": str(device),
        "precision": precision.label,
        "channels_last": channels_last,
        "seconds_per_step": seconds,
        "images_per_second": recipe.batch_size / seconds,
    }
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
        result["max_memory_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result))


if __name__ == "__main__":
    main()
