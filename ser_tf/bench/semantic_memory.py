"""Peak memory of the semantic model on a long recording, at the paper's sizes:
``python -m ser_tf.bench.semantic_memory``.

:func:`ser_tf.models.semantic_fusion.predict_recording` runs a recording of any length in
chunks, carrying the LSTMs' state. The unit test proves the bound on a shrunken network;
this measures the real one: the fusion model with every default of
:func:`~ser_tf.models.semantic_fusion.build_semantic_fusion` (50/125/250 filters, FC 1024,
300-d embeddings, two LSTMs of 256) on ``--minutes`` of SEWA-shaped frames (0.1 s, 4410
values: subject and partner halves at 22.05 kHz), made on demand so the recording itself
never exists at once, for each ``--chunks`` size. Each size runs in a fresh process that
reads its own peak resident memory (``VmHWM``, :func:`ser_tf.bench.stream.peak_rss_bytes`)
after one warm-up chunk and at the end. The weights are random: memory and time do not
depend on them. MB here are 2**20 bytes, as in the suite's other memory records. The
record goes to ``experiments/results/bench/semantic-long-recording.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FRAME_LEN = 4410  # SEWA's 0.1 s frame: subject and partner halves at 22.05 kHz


class LazyFrames:
    """``frames`` audio frames made on demand (a deterministic sine pattern): slicing gives
    the rows asked for, so a recording of any length never exists at once."""

    def __init__(self, frames: int, frame_len: int = FRAME_LEN):
        self.frames, self.frame_len = int(frames), int(frame_len)

    def __len__(self):
        return self.frames

    def __getitem__(self, part):
        import numpy as np

        rows = np.arange(self.frames)[part]
        return np.sin(rows[:, None] * 0.01 + np.arange(self.frame_len)[None] * 0.05,
                      dtype=np.float32)


CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from ser_tf.bench.semantic_memory import FRAME_LEN, LazyFrames
    from ser_tf.bench.stream import peak_rss_bytes
    from ser_tf.models.semantic_fusion import build_semantic_fusion, predict_recording

    frames, chunk, vocab = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    model = build_semantic_fusion(vocab_size=vocab, frame_len=FRAME_LEN,
                                  **json.loads(sys.argv[4]))
    words = np.arange(frames) % vocab
    predict_recording(model, LazyFrames(chunk)[:], words[:chunk], chunk_frames=chunk)
    warm = peak_rss_bytes()
    start = time.perf_counter()
    out = predict_recording(model, LazyFrames(frames), words, chunk_frames=chunk)
    seconds = time.perf_counter() - start
    print(json.dumps({"chunk_frames": chunk, "frames": frames, "params": model.count_params(),
                      "peak_rss_mb": round(peak_rss_bytes() / 2**20, 1),
                      "peak_after_warmup_mb": round(warm / 2**20, 1),
                      "growth_mb": round((peak_rss_bytes() - warm) / 2**20, 1),
                      "seconds": round(seconds, 1), "shape": list(out.shape),
                      "finite": bool(np.isfinite(out).all())}))
""")


def measure(frames: int, chunk: int, *, vocab: int = 400, model_kwargs: dict | None = None
            ) -> dict:
    """Run :data:`CHILD` in a fresh process: the fusion model (paper sizes unless
    ``model_kwargs`` shrink it) on ``frames`` lazy frames in chunks of ``chunk``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    out = subprocess.run([sys.executable, "-c", CHILD, str(frames), str(chunk), str(vocab),
                          json.dumps(model_kwargs or {})], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=7200)
    if out.returncode != 0:
        raise RuntimeError(f"chunk {chunk}: the measuring process failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_tf.bench.semantic_memory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--chunks", default="100,400", help="chunk sizes in frames (0.1 s)")
    parser.add_argument("--out", type=Path,
                        default=REPO / "experiments/results/bench/semantic-long-recording.json")
    args = parser.parse_args(argv)
    frames = int(round(args.minutes * 600))
    if frames < 1:
        parser.error("--minutes must give at least one frame")
    chunks = [int(c) for c in args.chunks.split(",")]
    runs = [measure(frames, chunk) for chunk in chunks]
    whole_input_mb = frames * FRAME_LEN * 4 / 2**20
    record = {"format": "ser-tf-semantic-memory/1",
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "model": "build_semantic_fusion defaults (paper sizes), variant fusion, "
                       "random weights, vocabulary 400",
              "recording": f"{args.minutes:g} min of 0.1 s frames (4410 values), made on demand",
              "whole_recording_input_mb": round(whole_input_mb, 1),
              "load_average": list(os.getloadavg()), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for run in runs:
        print(f"chunk {run['chunk_frames']:>4} frames: peak {run['peak_rss_mb']} MB "
              f"(+{run['growth_mb']} MB after the warm-up chunk), {run['seconds']} s")
    print(f"(the whole recording's input alone: {whole_input_mb:.0f} MB)\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
