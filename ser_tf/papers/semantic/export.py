"""TFLite export of a trained semantic model, and running it without TensorFlow.

Two files per model, both float32 and built from TFLite builtin ops only (the LSTMs become
a ``WHILE`` loop; no Flex/select-TF op is needed):

- ``<name>-stream.tflite``: the streaming network (:func:`ser_tf.models.semantic_fusion.
  streaming_model`) for a fixed chunk of ``chunk_frames`` frames: inputs ``audio``,
  ``words`` and the LSTM states ``h_k``/``c_k``, outputs ``emotion`` and the new states.
  Feeding chunk after chunk with the states carried gives the Keras model's outputs for a
  recording of any length (:func:`predict_recording_lite`; the last chunk is zero-padded,
  which cannot change earlier frames);
- ``<name>-sequence.tflite``: the whole model with a variable number of frames (resize the
  inputs to (1, T, ...) before allocating): one call per recording, memory growing with T.

A JSON sidecar names the inputs, outputs, chunk length, target names and the vocabulary
file to use, and the order of the streaming model's outputs (:class:`LiteStream`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUTPUT = "emotion"  # ser_tf.models.semantic_fusion.OUTPUT_NAME (not imported: no TF here)


def _convert(model, specs: dict) -> bytes:
    import tensorflow as tf

    names = list(specs)

    @tf.function(autograph=False)
    def serve(*args):
        return model(dict(zip(names, args)), training=False)

    concrete = serve.get_concrete_function(*[specs[n] for n in names])
    # The function, not the model, as the trackable: with the model the converter keeps
    # the LSTM weights as resource variables, which the interpreter cannot read inside the
    # WHILE loop ("READ_VARIABLE failed"); with the function they are frozen to constants.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], serve)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def export_tflite(model, out_dir, *, name: str, chunk_frames: int = 100,
                  outputs=("arousal", "valence", "liking"), vocabulary=None
                  ) -> dict[str, Path]:
    """Write ``<name>-stream.tflite``, ``<name>-sequence.tflite`` and ``<name>.json`` into
    ``out_dir`` (and a copy of the ``vocabulary`` JSON the word ids come from, if given);
    returns ``{"stream", "sequence", "sidecar"}`` paths."""
    import shutil

    import tensorflow as tf

    from ser_tf.models.semantic_fusion import model_input_names, streaming_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stream = streaming_model(model, chunk_frames=int(chunk_frames))
    stream_specs = {t.name.split(":")[0]: tf.TensorSpec((1, *t.shape[1:]), t.dtype,
                                                        name=t.name.split(":")[0])
                    for t in stream.inputs}
    sequence_specs = {t.name.split(":")[0]: tf.TensorSpec((1, None, *t.shape[2:]), t.dtype,
                                                          name=t.name.split(":")[0])
                      for t in model.inputs}
    paths = {"stream": out_dir / f"{name}-stream.tflite",
             "sequence": out_dir / f"{name}-sequence.tflite",
             "sidecar": out_dir / f"{name}.json"}
    if vocabulary is not None:
        shutil.copyfile(vocabulary, out_dir / f"{name}-vocabulary.json")
        vocabulary = f"{name}-vocabulary.json"
    paths["stream"].write_bytes(_convert(stream, stream_specs))
    paths["sequence"].write_bytes(_convert(model, sequence_specs))
    sidecar = {"name": name, "inputs": model_input_names(model),
               "states": sorted(n for n in stream_specs if n[:2] in ("h_", "c_")),
               "stream_outputs": sorted(stream.output),
               "chunk_frames": int(chunk_frames), "outputs": list(outputs),
               "frame_len": int(model.input[model_input_names(model)[0]].shape[-1])
               if "audio" in model_input_names(model) else None,
               "vocabulary": vocabulary, "files": {k: p.name for k, p in paths.items()
                                                   if k != "sidecar"}}
    paths["sidecar"].write_text(json.dumps(sidecar, indent=1), encoding="utf-8")
    return paths


def _identity_order(detail) -> int:
    """``Identity`` -> 0, ``Identity_3`` -> 3 (the converter's output names, in the order
    of the flattened outputs: a dict's keys sorted)."""
    name = detail["name"].split(":")[0]
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if name != "Identity" and tail.isdigit() else 0


class LiteStream:
    """The streaming ``.tflite`` behind a name-based call, with ``ai_edge_litert`` only:
    inputs matched by name, outputs by the converter's order (the sorted output names the
    sidecar lists)."""

    def __init__(self, path, output_names):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path))
        self.interpreter.allocate_tensors()
        self.inputs = {}
        for detail in self.interpreter.get_input_details():
            name = detail["name"].split(":")[0].replace("serving_default_", "")
            self.inputs[name] = detail
        outputs = sorted(self.interpreter.get_output_details(), key=_identity_order)
        if len(outputs) != len(output_names):
            raise ValueError(f"{path}: {len(outputs)} outputs, the sidecar names "
                             f"{len(output_names)}")
        self.outputs = dict(zip(output_names, outputs))

    def __call__(self, **feed) -> dict:
        for name, detail in self.inputs.items():
            self.interpreter.set_tensor(detail["index"], np.asarray(feed[name], detail["dtype"]))
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(detail["index"])
                for name, detail in self.outputs.items()}


def predict_recording_lite(sidecar, audio_frames=None, words=None) -> np.ndarray:
    """(T, n_outputs) of a whole recording with the exported streaming model (no
    TensorFlow): chunks of the sidecar's length, states carried, the last chunk
    zero-padded and cut back."""
    sidecar = Path(sidecar)
    info = json.loads(sidecar.read_text(encoding="utf-8"))
    runner = LiteStream(sidecar.parent / info["files"]["stream"], info["stream_outputs"])
    details = runner.inputs
    given = {"audio": audio_frames, "words": words}
    total = len(next(given[n] for n in info["inputs"]))
    chunk = int(info["chunk_frames"])
    states = {k: np.zeros(details[k]["shape"], np.float32) for k in info["states"]}
    out = []
    for start in range(0, total, chunk):
        stop = min(start + chunk, total)
        feed = dict(states)
        for name in info["inputs"]:
            part = np.asarray(given[name][start:stop])
            padded = np.zeros(details[name]["shape"][1:], details[name]["dtype"])
            padded[:stop - start] = part
            feed[name] = padded[None]
        result = runner(**feed)
        states = {k: result[k] for k in info["states"]}
        out.append(result[OUTPUT][0, :stop - start])
    return np.concatenate(out)


def predict_sequence_lite(sidecar, audio_frames=None, words=None) -> np.ndarray:
    """(T, n_outputs) of a whole recording with the exported variable-length model, in one
    call (inputs resized to its T frames; memory grows with T)."""
    from ai_edge_litert.interpreter import Interpreter

    sidecar = Path(sidecar)
    info = json.loads(sidecar.read_text(encoding="utf-8"))
    interpreter = Interpreter(model_path=str(sidecar.parent / info["files"]["sequence"]))
    given = {"audio": audio_frames, "words": words}
    details = {d["name"].split(":")[0].replace("serving_default_", ""): d
               for d in interpreter.get_input_details()}
    for name, detail in details.items():
        interpreter.resize_tensor_input(detail["index"], [1, *np.shape(given[name])])
    interpreter.allocate_tensors()
    for name, detail in details.items():
        interpreter.set_tensor(detail["index"], np.asarray(given[name], detail["dtype"])[None])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
