"""``make package-test``: the built bundle (not the venv) driven offscreen to a verdict.

1. ``deploy-studio zoo``: the command line runs and every zoo model's weights are inside the bundle.
2. ``deploy-studio gui --smoke --smoke-export DIR``: the window opens on the demo model, previews 20
   frames of the sample video, exports ONNX (verified by onnxruntime inside the bundle), exits 0.
3. OpenVINO, TFLite and CoreML exports in a child process (``--run-module``, as the window runs them),
   each verified; an INT8 variant quantized by onnxruntime.quantization and measured against its base
   (a child too); a language model built by onnxruntime-genai's builder (a child too) generates.
4. ``deploy-studio install-desktop``: the menu entry and file types point at the bundle.
5. ``deploy-studio DIR/model.onnx --smoke``: a model path given on the command line, as a file manager
   passes a double-clicked or dropped file, opens in the window (the file exported in step 2).

Runs in an empty working folder with a fresh cache and no venv on PATH, so nothing of the checkout is
used. Times from process start to the window being shown are measured from outside and written,
with the bundle's size, to dist/package-test.json. Exit 0 when every step passes, 1 with the step's
output otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOWN_MARK = "smoke: window shown"


def bundle_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(home), XDG_CACHE_HOME=str(home / "cache"),
               XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"))
    return env


def run(command: list[str], env: dict[str, str], cwd: Path, timeout_s: float) -> tuple[int, str, float | None, float]:
    """Exit code, combined output, seconds to the window-shown line (None if never) and total seconds."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               text=True, env=env, cwd=cwd)
    lines: list[str] = []
    shown: list[float] = []

    def read() -> None:
        for line in process.stdout:
            if line.startswith(SHOWN_MARK) and not shown:
                shown.append(time.perf_counter() - started)
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        lines.append(f"package-test: killed after {timeout_s:.0f} s\n")
    reader.join(timeout=10)
    return process.returncode, "".join(lines), (shown[0] if shown else None), time.perf_counter() - started


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / "deploy-studio")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed for each step")
    options = parser.parse_args(argv)
    exe = options.bundle / ("deploy-studio.exe" if sys.platform == "win32" else "deploy-studio")
    if not exe.is_file():
        print(f"package-test: {exe} does not exist: run 'make package' first", file=sys.stderr)
        return 1
    results: dict[str, object] = {"bundle": str(options.bundle), "size_mb": round(folder_mb(options.bundle), 1)}
    with tempfile.TemporaryDirectory(prefix="deploy-studio-package-test-") as scratch:
        home = Path(scratch)
        env, exports = bundle_env(home), home / "exports"
        recipe = home / "int8.toml"  # onnxruntime.quantization is imported only when a model is quantized
        recipe.write_text('format = "deploy-studio-recipe"\nversion = 1\nsteps = [\n'
                          '    { plugin = "quantize.dynamic_int8", settings_version = 1, settings = {} },\n]\n')
        steps = [
            ("zoo", [str(exe), "zoo"]),
            ("demo", [str(exe), "gui", "--smoke", "--smoke-export", str(exports)]),
            # The converters and runtimes the window starts in child processes, run as they run them.
            ("export-mobile", [str(exe), "--run-module", "studio.cli", "export", "zoo:yolov3-tiny-coco",
                               "--to", "openvino,tflite,coreml", "-o", str(home / "mobile")]),
            ("quantize", [str(exe), "--run-module", "studio.cli", "optimize", "zoo:yolov3-tiny-coco", "--recipe",
                          str(recipe), "-o", str(home / "int8"), "--runs", "5", "--fidelity-frames", "4"]),
            ("language-model", [str(exe), "generate", "zoo:smollm2-135m", "--runtime", "ort", "--precision", "int8",
                                "--max-new-tokens", "8", "The capital of France is"]),
            ("install-desktop", [str(exe), "install-desktop", "--data-home", str(home / "share")]),
        ]
        shown_s: list[float] = []
        for name, command in steps:
            code, output, shown, total = run(command, env, home, options.timeout)
            print(f"package-test: {name}: exit {code} in {total:.1f} s", flush=True)
            zoo_incomplete = name == "zoo" and any(" ready " not in line for line in output.splitlines()
                                                   if line.startswith("zoo:"))
            if code != 0 or zoo_incomplete:
                print(output[-4000:], file=sys.stderr)
                return 1
            if shown is not None:
                shown_s.append(shown)
            results[f"{name}_s"] = round(total, 1)
        entry = home / "share" / "applications" / "deploy-studio.desktop"
        if f"Exec={exe.resolve()} gui %f" not in entry.read_text():
            print(f"package-test: {entry} does not start the bundle", file=sys.stderr)
            return 1
        exported = sorted(exports.rglob("*.onnx"))
        if not exported:
            print(f"package-test: the demo export wrote no .onnx under {exports}", file=sys.stderr)
            return 1
        code, output, shown, total = run([str(exe), str(exported[0]), "--smoke"], env, home, options.timeout)
        print(f"package-test: open {exported[0].name} from the command line: exit {code} in {total:.1f} s")
        if code != 0 or f"smoke: opened {exported[0].stem}" not in output:
            print(output[-4000:], file=sys.stderr)
            return 1
        if shown is not None:
            shown_s.append(shown)
    if shown_s:
        results["window_shown_s"] = [round(s, 2) for s in shown_s]
        results["window_shown_median_s"] = round(statistics.median(shown_s), 2)
    out = options.bundle.parent / "package-test.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"package-test: passed; bundle {results['size_mb']} MB; window shown after "
          f"{results.get('window_shown_median_s', '?')} s (median of {len(shown_s)} launches, from process start); "
          f"{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
