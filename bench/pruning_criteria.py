"""How much of the detector survives structured pruning, per importance criterion, before any training.

Each cell is ``prune.channels`` (torch-pruning, round_to 8, head kept whole) at one ratio with one
criterion, scored on torch against the unpruned model on the 12-frame fidelity set (mAP50 of the
pruned model's detections against the original's, conf 0.001 vs 0.25).

    .venv/bin/python bench/pruning_criteria.py [--model zoo:yolov8s-fall] [--ratios 0.05 0.1 0.2 0.3]
"""

from __future__ import annotations

import argparse

from studio import offline

CRITERIA = [("l1", False, "L1 (torch-pruning default)"), ("l1", True, "L1 + bias compensation"),
            ("bn_scale", True, "BN scale + compensation"), ("output_error", True, "output error + compensation")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:yolov8s-fall")
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.05, 0.1, 0.2, 0.3])
    args = parser.parse_args()
    offline.apply()
    from studio.loaders import load_model
    from studio.recovery.distill import torch_fidelity
    from studio.registry import default_registry
    from studio.tasks import TaskContext

    handle = load_model(args.model)
    plugin = default_registry().get("prune.channels")
    print(f"| criterion | {' | '.join(f'{r:.0%}' for r in args.ratios)} |")
    print(f"|---|{'---|' * len(args.ratios)}")
    for criterion, compensate, label in CRITERIA:
        cells = []
        for ratio in args.ratios:
            variant = plugin.apply(handle, plugin.Settings(ratio=ratio, criterion=criterion, compensate=compensate),
                                   TaskContext())
            result = torch_fidelity(handle, variant.torch_module)
            cells.append(f"{result['value']:.3f}")
        print(f"| {label} | {' | '.join(cells)} |", flush=True)
    print(f"\n{args.model}: {result['metric']} against the unpruned model, {result.get('frames', 12)} frames, "
          "no recovery training.")


if __name__ == "__main__":
    main()
