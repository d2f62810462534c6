"""EfficientNet-Lite0 early exit: mean-latency speed-up at a top-1 agreement target, on the judging side.

One ``early_exit.classifier`` step (the same code as ``deploy-studio optimize``): heads trained by the
engine's trainer on the training side (``--device``, ``--minutes``), the threshold chosen on frames held
out from training, then every judging frame run through the full model and the exit segments on
onnxruntime (1 thread, each timed; median of 3 per frame). Prints the chosen threshold with its speed-up
and agreement (95 % bootstrap intervals, frames), the training device and minutes, and the judging-side
curve. With ``--score gate`` (the default) it also prints what the same heads give exiting on their top
probability (threshold chosen the same way on the same choosing frames, judged on the same timings), and
each score's separation (ROC AUC for "this exit agrees with the final layer") per exit.

    .venv/bin/python bench/early_exit.py [--exits auto] [--score gate|softmax] [--steps 300] [--lr 1e-3]
        [--batch 16] [--minutes 0] [--device auto] [--target 0.95] [--frames PATH] [--json OUT]

``--frames "$(.venv/bin/python bench/media.py --set images)"``: 1,519 images of objects, animals, places and
drawings (``bench/media.py``), on which the classifier's answers are not the near-ties of a street video.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from studio.loaders import load_model
from studio.machine import cpu_line
from studio.registry import default_registry
from studio.tasks import TaskContext

TARGET_SPEEDUP = 1.3


def _context(frames: str | None) -> TaskContext:
    from studio.data import FrameSet

    return TaskContext(frames=FrameSet.open(frames) if frames else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exits", default="auto")
    parser.add_argument("--score", choices=("gate", "softmax"), default="gate")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=0.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--frames", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = load_model("zoo:efficientnet-lite0")
    plugin = default_registry().get("early_exit.classifier")
    settings = plugin.Settings(exits=args.exits, exit_score=args.score, steps=args.steps, lr=args.lr, batch=args.batch,
                               minutes=args.minutes,
                               device=args.device, target_agreement=args.target, patience=1000)
    ctx = _context(args.frames)
    started = time.perf_counter()
    plugin.apply(model, settings, ctx)
    report = ctx.reports[-1]
    training, chosen = report["training"], report["chosen"]
    print(f"# {cpu_line()}; whole step {(time.perf_counter() - started) / 60:.1f} min")
    print(f"training: {training['steps']} steps ({training['stopped']}), batch {training['batch']}, "
          f"lr {training['lr']}, {training['minutes']} min on {training['device']['name']}; choosing-frame agreement "
          f"{training['fidelity_start']} -> {training['fidelity_best']} (per exit {training['judge']['per_exit']})")
    print(f"exits after blocks {report['exits_after_blocks']}; {report.get('warnings', ['threshold chosen'])[0]}")
    _print_chosen(f"{args.score} score", chosen, report, args.target)
    print(f"separation (ROC AUC per exit): choosing {report.get('choice', {}).get('separation')}, "
          f"judging {report['separation']}")
    _print_curve(report["curve"])
    softmax = report.get("softmax_same_heads")
    if softmax:
        print(f"--- the same heads on their top probability ("
              f"{'threshold chosen' if softmax['reached_target_on_choosing_frames'] else 'no threshold reached'}"
              f" the target on the choosing frames)")
        _print_chosen("softmax score", softmax["chosen"], report, args.target)
        print(f"separation (ROC AUC per exit): choosing {softmax['choice_separation']}, "
              f"judging {softmax['separation']}")
        _print_curve(softmax["curve"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


def _print_chosen(what: str, chosen: dict, report: dict, target: float) -> None:
    speed, agree = chosen["speedup_interval"] or {}, chosen["top1_agreement_interval"] or {}
    print(f"{what}: threshold {chosen['threshold']} ({chosen.get('how', 'auto')}): speed-up {chosen['speedup']}x "
          f"[{speed.get('low')}-{speed.get('high')}] (mean {chosen['mean_ms']} ms vs "
          f"{chosen['full_model_mean_ms']} ms), exit shares {chosen['exit_share']}, "
          f"top-1 agreement {chosen['top1_agreement']} [{agree.get('low')}-{agree.get('high')}] on "
          f"{chosen['evidence']['frames']} judging frames ({report['judged_on']})")
    met = chosen["speedup"] >= TARGET_SPEEDUP and chosen["top1_agreement"] >= target
    print(f"target {TARGET_SPEEDUP}x at agreement >= {target}: {'met' if met else 'missed'}")


def _print_curve(curve: list) -> None:
    print("judging-side curve: threshold, exit shares, speed-up, agreement")
    for point in curve:
        print(f"  {point['threshold']:<5} {point['exit_share']} {point['speedup']:>6} {point['top1_agreement']:>6}")


if __name__ == "__main__":
    main()
