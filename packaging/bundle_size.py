"""Where the bundle's bytes go: total, the CUDA libraries of PyPI's Linux torch, the largest packages,
and (given an untrimmed build to compare) what the trimming rules of bundle_rules.py saved.

    python packaging/bundle_size.py [dist/deploy-studio] [--untrimmed dist/untrimmed/deploy-studio]

Writes dist/bundle-size.json beside the bundle.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Files that exist only because torch is a CUDA build: NVIDIA's libraries and torch's CUDA halves.
_CUDA = re.compile(r"(^|/)(nvidia|cuda)/|lib(torch_cuda|c10_cuda|cudart|cublas|cudnn|cufft|curand|cusolver|cusparse|"
                   r"nccl|nvrtc|nvJitLink|nvshmem|cupti|cufile|torch_nvshmem)")


def files(bundle: Path) -> list[tuple[str, int]]:
    return [(p.relative_to(bundle).as_posix(), p.stat().st_size) for p in bundle.rglob("*")
            if p.is_file() and not p.is_symlink()]


def summary(bundle: Path) -> dict:
    listed = files(bundle)
    total = sum(size for _, size in listed)
    cuda = sum(size for name, size in listed if _CUDA.search(name))
    groups: Counter[str] = Counter()
    for name, size in listed:
        parts = name.split("/")
        groups[parts[1] if parts[0] == "_internal" and len(parts) > 2 else parts[-1]] += size
    return {"bundle": str(bundle), "files": len(listed), "total_mb": round(total / 1e6, 1),
            "cuda_mb": round(cuda / 1e6, 1), "largest_mb": {k: round(v / 1e6, 1) for k, v in groups.most_common(12)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", type=Path, default=ROOT / "dist" / "deploy-studio")
    parser.add_argument("--untrimmed", type=Path, default=None, help="a bundle built with DEPLOY_STUDIO_UNTRIMMED=1")
    options = parser.parse_args(argv)
    if not options.bundle.is_dir():
        print(f"bundle-size: {options.bundle} does not exist: run 'make package' first", file=sys.stderr)
        return 1
    report = summary(options.bundle)
    if options.untrimmed is not None:
        report["untrimmed"] = summary(options.untrimmed)
        report["saved_mb"] = round(report["untrimmed"]["total_mb"] - report["total_mb"], 1)
    out = options.bundle.parent / "bundle-size.json"
    out.write_text(json.dumps(report, indent=2))
    share = 100 * report["cuda_mb"] / report["total_mb"]
    print(f"bundle {report['total_mb']:,.0f} MB in {report['files']:,} files; "
          f"CUDA libraries {report['cuda_mb']:,.0f} MB ({share:.0f} %)")
    if "untrimmed" in report:
        print(f"untrimmed {report['untrimmed']['total_mb']:,.0f} MB: the rules save {report['saved_mb']:,.0f} MB")
    for name, size in report["largest_mb"].items():
        print(f"  {name:32s} {size:9,.1f} MB")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
