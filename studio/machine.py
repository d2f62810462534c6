"""Which CPU a figure was measured on, and which of its instructions decide INT8 and FP16 speed.

onnxruntime's INT8 kernels pick their path by CPU feature: with VNNI (AVX512-VNNI, AVX-VNNI) or AMX a
u8×s8 dot product is one exact instruction; on AVX2 alone it goes through ``vpmaddubsw``, whose int16
intermediate sums can saturate (onnxruntime's documentation recommends ``reduce_range`` there). The
same INT8 file can therefore be faster and more faithful on one machine than another: every report
names the features it was measured with.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

# Flags as Linux's /proc/cpuinfo spells them (macOS's sysctl names are mapped onto these).
INT8_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8")
REPORTED = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
            "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "sve")


def _linux_cpu() -> tuple[str, set[str]]:
    text = Path("/proc/cpuinfo").read_text(errors="replace")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    return fields.get("model name") or fields.get("cpu part") or platform.processor(), flags


def _mac_cpu() -> tuple[str, set[str]]:
    def sysctl(name: str) -> str:
        try:
            return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=2).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    flags = {f.lower().replace(".", "_") for f in (sysctl("machdep.cpu.features") + " "
                                                    + sysctl("machdep.cpu.leaf7_features")).split()}
    if platform.machine() == "arm64":  # every Apple silicon core has NEON dot products and i8mm from M2
        flags |= {"asimd", "asimddp"} | ({"i8mm"} if sysctl("hw.optional.arm.FEAT_I8MM") == "1" else set())
    flags |= {"avx512_vnni"} if "avx512vnni" in flags else set()
    return sysctl("machdep.cpu.brand_string") or platform.processor(), flags


@functools.cache
def cpu_description() -> dict[str, Any]:
    """The CPU's name, logical cores, the reported subset of its features and its INT8 path."""
    try:
        name, flags = _mac_cpu() if platform.system() == "Darwin" else _linux_cpu()
    except OSError:  # no /proc (Windows, a sandbox): say what little is known
        name, flags = platform.processor() or platform.machine(), set()
    int8 = [f for f in INT8_FEATURES if f in flags]
    if int8:
        path = f"INT8 dot products in one instruction ({', '.join(int8)})"
    elif "avx2" in flags:
        path = "AVX2 without VNNI: onnxruntime's u8s8 INT8 kernels can saturate (reduce_range avoids it)"
    elif "asimddp" in flags:
        path = "Arm dot-product instructions (asimddp)"
    else:
        path = "no INT8 dot-product instructions reported"
    return {"cpu": name or "unknown", "machine": platform.machine(), "logical_cores": os.cpu_count(),
            "features": [f for f in REPORTED if f in flags], "int8_path": path, "vnni": bool(int8)}


def cpu_line() -> str:
    """One line for text reports: 'AMD EPYC … (x86_64, 2 cores; avx2 avx512_vnni …)'."""
    cpu = cpu_description()
    return (f"{cpu['cpu']} ({cpu['machine']}, {cpu['logical_cores']} logical cores; "
            f"{' '.join(cpu['features']) or 'features unknown'}) — {cpu['int8_path']}")
