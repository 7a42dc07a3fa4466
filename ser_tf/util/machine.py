"""What CPU a time was measured on.

Epoch times and TFLite latencies differ 2–10× between x86 hosts that differ only in their
vector extensions (an AVX-512 Xeon against an AVX2-only EPYC, measured here), so every
record holding a time also names the CPU model, the SIMD extensions TensorFlow and LiteRT
can use, and the load when it was measured.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The /proc/cpuinfo flags that change how fast XNNPACK / oneDNN kernels run.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
              "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16",
              "asimd", "asimddp", "sve")


def _cpuinfo_fields(path: Path) -> dict[str, str]:
    """First value of each ``key: value`` line of a cpuinfo file (all cores are alike)."""
    fields: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def cpu_info(cpuinfo_path="/proc/cpuinfo") -> dict:
    """The host's CPU as a JSON-able dict.

    Keys: ``cpu_count``, ``usable_cpus`` (this process's affinity), ``machine``, ``system``,
    ``model_name`` (``None`` where ``cpuinfo_path`` is missing, e.g. macOS), ``simd`` (the
    :data:`SIMD_FLAGS` the CPU reports, in that order) and ``load_average`` (1, 5, 15 min;
    ``None`` where the OS has none).
    """
    fields = _cpuinfo_fields(Path(cpuinfo_path))
    # x86 says "flags" and "model name"; ARM (a Raspberry Pi) says "Features" and "Model".
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"cpu_count": os.cpu_count(), "usable_cpus": usable,
            "machine": platform.machine(), "system": platform.system(),
            "model_name": fields.get("model name") or fields.get("Model") or None,
            "simd": [flag for flag in SIMD_FLAGS if flag in flags],
            "load_average": load}


def describe_cpu(info: dict | None) -> str:
    """One line for a table or model card: ``"Intel Xeon (2 CPUs; avx2, avx512f)"``."""
    if not info:
        return "a CPU the record does not name (written before records named it)"
    vector = [f for f in info.get("simd") or [] if f in ("avx2", "avx512f", "asimd", "sve")]
    parts = [f"{info.get('cpu_count')} CPUs"] + ([", ".join(vector)] if vector else [])
    return f"{info.get('model_name') or info.get('machine') or 'unknown CPU'} ({'; '.join(parts)})"
