"""Feature-extraction throughput: files per second with a cold and a warm cache.

::

    python -m ser_tf.bench.features --dataset EMODB --data-dir ../shared/data/emodb \\
        --recipe lightsernet --out experiments/results/features/emodb-lightsernet-throughput.json

The cold run uses a fresh temporary cache (deleted afterwards), so the user's cache is
neither used nor polluted; the warm run repeats the extraction on that filled cache, which
measures hashing + loading only. The front-end is called once on a dummy batch before
timing, so one-time costs (TensorFlow start-up, graph tracing) are reported separately as
``warmup_seconds`` instead of inflating the cold rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ser_tf.data import load_manifest
from ser_tf.features.cache import extract_features
from ser_tf.util.machine import cpu_info


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("ser-tf", "numpy", "tensorflow", "keras", "librosa", "soundfile", "soxr"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def _usable_cpus() -> set[int] | None:
    return set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def _machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, steal) CPU seconds since boot of the CPUs this process may run on, from
    ``/proc/stat`` (its ``cpuN`` lines; work on other cores is no contention)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    usable = _usable_cpus()
    busy = steal = 0
    found = False
    for line in lines:
        fields = line.split()
        if not fields or not fields[0].startswith("cpu") or fields[0] == "cpu" or len(fields) < 9:
            continue
        if usable is not None and int(fields[0][3:]) not in usable:
            continue
        user, nice, system, _idle, _iowait, irq, softirq, stolen = (int(v) for v in fields[1:9])
        busy += user + nice + system + irq + softirq
        steal += stolen
        found = True
    if not found:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, steal / tick


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """How busy the machine was with other work while a benchmark ran.

    The load average is a one-minute moving average: it still counts a job stopped a moment
    before the benchmark and barely sees one started during it. This instead takes the
    machine's busy CPU time (``/proc/stat``) over the benchmark's wall time and subtracts
    this process's own (and its waited-for children's). ``stop()`` returns
    ``{"wall_seconds", "other_cores_busy", "steal_cores"}``: the mean number of cores other
    processes kept busy, and the mean number the hypervisor took away; ``None`` where
    ``/proc/stat`` does not exist.
    """

    def __init__(self):
        self._wall = time.monotonic()
        self._machine = _machine_cpu_seconds()
        self._own = _own_cpu_seconds()

    def stop(self) -> dict | None:
        machine = _machine_cpu_seconds()
        if self._machine is None or machine is None:
            return None
        wall = max(time.monotonic() - self._wall, 1e-9)
        busy = machine[0] - self._machine[0]
        own = _own_cpu_seconds() - self._own
        return {"wall_seconds": round(wall, 2),
                "other_cores_busy": round(max(busy - own, 0.0) / wall, 3),
                "steal_cores": round((machine[1] - self._machine[1]) / wall, 3)}


def contention_warning(other_load: dict | None, cores: int) -> str | None:
    """The warning a benchmark record carries when other work shared its CPUs, else ``None``.
    A tenth of a core is the noise of an idle machine (shell, logging)."""
    if not other_load:
        return None
    taken = other_load["other_cores_busy"] + other_load["steal_cores"]
    if taken <= 0.1 * cores:
        return None
    return (f"other processes used {other_load['other_cores_busy']:.2f} and the hypervisor "
            f"{other_load['steal_cores']:.2f} of {cores} cores on average during the run: "
            "the timings include that contention")


def note_contention(record: dict, meter: OtherLoad) -> dict:
    """Store ``meter.stop()`` as ``record["cpu"]["other_load"]`` and, when other work shared
    the CPUs, the record's ``warning``; returns ``record``."""
    cpu = record.setdefault("cpu", {})
    cpu["other_load"] = meter.stop()
    cores = cpu.get("usable_cpus") or cpu.get("cpu_count") or 1
    warning = contention_warning(cpu["other_load"], cores)
    if warning:
        record["warning"] = warning
    return record


def _public(stats: dict) -> dict:
    return {"computed": stats["computed"], "cached": stats["cached"],
            "seconds": round(stats["seconds"], 4),
            "files_per_second": round(stats["files_per_second"], 2),
            "skipped": len(stats["skipped"])}


def benchmark_extraction(manifest, recipe, *, batch_size: int = 64, warm_repeats: int = 1,
                         on_bad_audio: str = "fail") -> dict:
    """Time :func:`extract_features` on ``manifest`` with an empty, then a filled cache.

    Returns a JSON-able record: recipe config, file count, ``warmup_seconds``, ``cold`` and
    ``warm`` (computed, cached, seconds, files_per_second; ``warm`` is the best of
    ``warm_repeats`` runs), feature shape, CPU and package versions.
    """
    if len(manifest) == 0:
        raise ValueError("the manifest is empty: nothing to benchmark")
    if warm_repeats < 1:
        raise ValueError(f"warm_repeats must be >= 1, got {warm_repeats}")
    # One dummy segment through the front-end: traces graphs / loads kernels before timing.
    t0 = time.perf_counter()
    dummy = recipe.segment_audio(np.full(recipe.sample_rate, 1e-3, dtype=np.float32))
    recipe.compute(np.asarray(dummy, dtype=np.float32)[None])
    warmup = time.perf_counter() - t0

    cache_dir = Path(tempfile.mkdtemp(prefix="ser-tf-bench-"))
    try:
        cold = extract_features(manifest, recipe, cache_dir, batch_size=batch_size,
                                on_bad_audio=on_bad_audio)
        warm_runs = [extract_features(manifest, recipe, cache_dir, batch_size=batch_size,
                                      on_bad_audio=on_bad_audio) for _ in range(warm_repeats)]
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    warm = min(warm_runs, key=lambda fs: fs.stats["seconds"])
    return {
        "kind": "feature_extraction_throughput",
        "corpus": manifest.corpus,
        "recipe": recipe.config(),
        "files": len(manifest),
        "batch_size": batch_size,
        "feature_shape": list(cold.features.shape[1:]) if cold.features is not None else None,
        "warmup_seconds": round(warmup, 4),
        "cold": _public(cold.stats),
        "warm": _public(warm.stats),
        "warm_repeats": warm_repeats,
        "cpu": cpu_info(),
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_record(record: dict, out) -> Path:
    """Write ``record`` as indented JSON, atomically (temporary file + rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def run(dataset: str, data_dir, recipe_name: str, out=None, *, batch_size: int = 64,
        warm_repeats: int = 1, limit: int | None = None, on_bad_audio: str = "fail") -> dict:
    """Load the corpus manifest and the named recipe, benchmark, and optionally save."""
    from ser_tf.features.recipes import get_recipe
    from ser_tf.papers import get_paper, paper_names

    for paper in paper_names():
        get_paper(paper)  # importing a paper's package registers its recipes
    manifest = load_manifest(dataset, data_dir, on_bad_audio=on_bad_audio)
    if limit is not None:
        manifest = manifest.subset([u.utterance_id for u in manifest][:int(limit)])
    record = benchmark_extraction(manifest, get_recipe(recipe_name), batch_size=batch_size,
                                  warm_repeats=warm_repeats, on_bad_audio=on_bad_audio)
    record["recipe_name"] = recipe_name
    if out is not None:
        write_record(record, out)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_tf.bench.features",
                                     description="Measure feature-extraction files/s "
                                                 "(cold and warm cache).")
    parser.add_argument("--dataset", required=True, help="corpus name, e.g. EMODB")
    parser.add_argument("--data-dir", default=None, help="corpus folder (default $SER_TF_DATA/<corpus>)")
    parser.add_argument("--recipe", required=True, help="feature recipe name, e.g. lightsernet")
    parser.add_argument("--out", default=None, help="write the JSON record here")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warm-repeats", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    parser.add_argument("--on-bad-audio", choices=("fail", "skip"), default="fail")
    args = parser.parse_args(argv)
    try:
        record = run(args.dataset, args.data_dir, args.recipe, args.out,
                     batch_size=args.batch_size, warm_repeats=args.warm_repeats,
                     limit=args.limit, on_bad_audio=args.on_bad_audio)
    except (FileNotFoundError, ValueError, KeyError, OSError) as err:
        print(f"ser_tf.bench.features: error: {err}", file=sys.stderr)
        return 1
    print(f"{record['corpus']} / {args.recipe}: {record['files']} files; "
          f"cold {record['cold']['files_per_second']} files/s, "
          f"warm {record['warm']['files_per_second']} files/s"
          + (f" -> {args.out}" if args.out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
