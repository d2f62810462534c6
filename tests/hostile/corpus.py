"""A corpus of hostile inputs, generated (never stored as binaries): every accepted format broken in the
ways files from strangers are broken — empty, truncated, random, mislabelled, cyclic, absurdly sized,
pointing outside their folder, compressed into bombs, carrying code, looping through symlinks.

``build_corpus(root, canary)`` writes the files under ``root`` and returns the cases. A case's
``command`` is the CLI command that must refuse it (exit 2, one line naming the file); ``canary`` is a
file that any executed payload would create: it must never exist.
"""

from __future__ import annotations

import os
import pickle
import random
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

MODEL, VIDEO, RECIPE = "model", "video", "recipe"


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    kind: str = MODEL  # which command refuses it

    def command(self) -> list[str]:
        if self.kind == VIDEO:
            return ["predict", "zoo:yolov8n-random", str(self.path), "--max-frames", "5"]
        if self.kind == RECIPE:
            return ["optimize", "zoo:yolov8n-random", "--recipe", str(self.path), "-o", str(self.path.parent / "out")]
        return ["info", str(self.path)]


class _Payload:
    """Unpickling it runs a shell command that creates the canary."""

    def __init__(self, command: str, canary: Path, arg_fn=os.system):
        self.command, self.canary, self.fn = command, canary, arg_fn

    def __reduce__(self):
        return (self.fn, (f"{self.command} {self.canary}",))


def _conv_model(inputs_shape=(1, 3, 32, 32), channels: int = 64) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [channels, inputs_shape[1], 3, 3],
                                rng.standard_normal(channels * inputs_shape[1] * 9).astype(np.float32).tobytes(),
                                raw=True)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(inputs_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, *inputs_shape[2:]])],
                              [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _save_onnx(path: Path, model: onnx.ModelProto) -> Path:
    return _write(path, model.SerializeToString())


def _onnx_cases(root: Path) -> list[Case]:
    good = _conv_model().SerializeToString()
    cases = [Case("onnx empty", _write(root / "empty.onnx", b"")),
             Case("onnx random bytes", _write(root / "random.onnx", random.Random(1).randbytes(8192))),
             Case("onnx text", _write(root / "text.onnx", b"<html>404 not found</html>\n")),
             Case("onnx header only", _write(root / "header.onnx", good[:16]))]
    for fraction in (0.1, 0.5, 0.97):
        cut = int(len(good) * fraction)
        cases.append(Case(f"onnx truncated at {fraction:.0%}", _write(root / f"truncated_{cut}.onnx", good[:cut])))
    # A cycle: a -> b -> a.
    cyclic = helper.make_graph([helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])],
                               "cyclic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                               [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])])
    cases.append(Case("onnx cyclic graph", _save_onnx(root / "cyclic.onnx", helper.make_model(cyclic))))
    dangling = helper.make_graph([helper.make_node("Add", ["x", "nowhere"], ["y"])], "dangling",
                                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    cases.append(Case("onnx dangling input", _save_onnx(root / "dangling.onnx", helper.make_model(dangling))))
    no_outputs = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "silent",
                                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])], [])
    cases.append(Case("onnx without outputs", _save_onnx(root / "no_outputs.onnx", helper.make_model(no_outputs))))
    # 10^12 elements declared: an input of 10^6 x 10^6, and an initializer of that size with no data.
    cases.append(Case("onnx 10^12-element input", _save_onnx(
        root / "huge_input.onnx", _conv_model(inputs_shape=(1, 3, 1_000_000, 1_000_000)))))
    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1_000_000, 1_000_000])  # no data at all
    huge_graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "huge",
                                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1_000_000])],
                                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1_000_000])], [huge])
    cases.append(Case("onnx 10^12-element initializer", _save_onnx(root / "huge_weight.onnx",
                                                                   helper.make_model(huge_graph))))
    for label, location in (("relative path outside", "../../../../../../etc/passwd"),
                            ("absolute path", "/etc/passwd"), ("missing file", "weights.bin")):
        model = _conv_model()
        tensor = model.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "6912")):
            tensor.external_data.add(key=key, value=value)
        slug = label.replace(" ", "_")
        folder = root / f"external_{slug}"
        cases.append(Case(f"onnx external data: {label}", _save_onnx(folder / "model.onnx", model)))
    future = _conv_model()
    future.opset_import[0].version = 99
    cases.append(Case("onnx opset 99", _save_onnx(root / "opset99.onnx", future)))
    alien = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], domain="com.evil")], "alien",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    cases.append(Case("onnx unknown custom op", _save_onnx(root / "alien.onnx", helper.make_model(
        alien, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.evil", 1)]))))
    cases.append(Case("onnx bytes named .pt", _write(root / "onnx_inside.pt", good)))
    return cases


def _zip_bomb(path: Path, member: str, size: int) -> Path:
    """A zip whose member inflates to ``size`` bytes of zeros (about 1000:1 with deflate)."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(f"{member.split('/')[0]}/version", "3\n")  # what torch's reader looks for first
        with archive.open(member, "w", force_zip64=True) as handle:
            for _ in range(size // len(chunk)):
                handle.write(chunk)
    return path


def _pt_cases(root: Path, canary: Path) -> list[Case]:
    import torch

    root.mkdir(parents=True, exist_ok=True)
    good_path = root / "good_conv.pt"
    torch.save({"model": torch.nn.Conv2d(3, 8, 3)}, good_path)
    good = good_path.read_bytes()
    good_path.unlink()
    cases = [Case("pt empty", _write(root / "empty.pt", b"")),
             Case("pt random bytes", _write(root / "random.pt", random.Random(2).randbytes(4096))),
             Case("pt not zip, not pickle", _write(root / "plain.pt", b"just some text, not a checkpoint\n"))]
    for fraction in (0.3, 0.9):
        cut = int(len(good) * fraction)
        cases.append(Case(f"pt truncated at {fraction:.0%}", _write(root / f"truncated_{cut}.pt", good[:cut])))
    # 320 MB each (1000:1, 320 KB on disk): above any record torch.save writes compressed (it writes none).
    cases.append(Case("pt zip bomb (data.pkl)", _zip_bomb(root / "bomb.pt", "bomb/data.pkl", 320 << 20)))
    cases.append(Case("pt zip bomb in a tensor record", _zip_bomb(root / "bomb_tensor.pt", "bomb/data/0", 320 << 20)))
    payload = root / "payload.pt"
    torch.save({"model": _Payload("touch", canary)}, payload)
    cases.append(Case("pt pickle that runs a command", payload))
    cases.append(Case("bare pickle that runs a command",
                      _write(root / "legacy_payload.pt", pickle.dumps(_Payload("touch", canary)))))
    cases.append(Case("pth pickle that runs a command",
                      _write(root / "weights.pth", pickle.dumps({"w": _Payload("touch", canary)}))))
    plain = root / "plain_dict.pt"
    torch.save({"epoch": 3, "note": "no model here"}, plain)
    cases.append(Case("pt without a model", plain))
    state = root / "state_dict.pth"
    torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), state)
    cases.append(Case("pth bare state dict", state))
    cases.append(Case("safetensors random bytes",
                      _write(root / "random.safetensors", random.Random(3).randbytes(2048))))
    cases.append(Case("safetensors absurd header length", _write(root / "huge_header.safetensors",
                                                                struct.pack("<Q", 1 << 60) + b"{}")))
    return cases


def _yaml_cases(root: Path, canary: Path) -> list[Case]:
    laughs = "a: &a [" + ",".join(["x"] * 10) + "]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8))
    return [
        Case("yaml python tag that runs a command", _write(root / "evil.yaml", (
            f"nc: 80\nbackbone: !!python/object/apply:os.system ['touch {canary}']\nhead: []\n").encode())),
        Case("yaml billion laughs", _write(root / "laughs.yaml", (laughs + "nc: *i\n").encode())),
        Case("yaml unknown modules", _write(root / "unknown.yaml", (
            b"nc: 2\nbackbone:\n  - [-1, 1, Frobnicator, [64, 3, 2]]\nhead:\n  - [-1, 1, Detect, [nc]]\n"))),
        Case("yaml binary bytes", _write(root / "binary.yaml", random.Random(4).randbytes(1024))),
    ]


def _darknet_cases(root: Path) -> list[Case]:
    unknown = root / "darknet_unknown" / "net.cfg"
    _write(unknown, b"[net]\nwidth=416\nheight=416\nchannels=3\n\n[frobnicate]\nsize=3\n")
    _write(unknown.with_suffix(".weights"), bytes(20 + 4 * 64))
    missing = root / "darknet_alone" / "net.cfg"
    _write(missing, b"[net]\nwidth=416\nheight=416\nchannels=3\n\n[convolutional]\nfilters=16\nsize=3\n")
    short = root / "darknet_short" / "net.cfg"
    _write(short, b"[net]\nwidth=416\nheight=416\nchannels=3\n\n[convolutional]\nbatch_normalize=1\n"
                  b"filters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n[yolo]\nmask=0\nanchors=10,14\nclasses=1\nnum=1\n")
    _write(short.with_suffix(".weights"), bytes(24))
    garbage = root / "darknet_garbage" / "net.cfg"
    _write(garbage, random.Random(5).randbytes(512))
    _write(garbage.with_suffix(".weights"), random.Random(6).randbytes(512))
    yolo = b"\n[yolo]\nmask=0\nanchors=10,14\nclasses=1\nnum=1\n"
    absurd = root / "darknet_absurd" / "net.cfg"
    _write(absurd, b"[net]\nwidth=416\nheight=416\nchannels=3\n\n[convolutional]\nfilters=100000000\nsize=3\n" + yolo)
    _write(absurd.with_suffix(".weights"), bytes(24))
    huge_input = root / "darknet_huge_input" / "net.cfg"
    _write(huge_input,
           b"[net]\nwidth=1000000\nheight=1000000\nchannels=3\n\n[convolutional]\nfilters=6\nsize=1\n" + yolo)
    _write(huge_input.with_suffix(".weights"), bytes(24 + 4 * 64))
    return [Case("darknet unknown layer", unknown), Case("darknet cfg without weights", missing),
            Case("darknet truncated weights", short), Case("darknet random bytes", garbage),
            Case("darknet 10^8 filters", absurd), Case("darknet 10^6 x 10^6 input", huge_input)]


def _gguf_cases(root: Path) -> list[Case]:
    header = b"GGUF" + struct.pack("<I", 3)
    return [
        Case("gguf bad magic", _write(root / "bad_magic.gguf", b"GGML" + bytes(60))),
        Case("gguf version 999", _write(root / "future.gguf", b"GGUF" + struct.pack("<IQQ", 999, 0, 0))),
        Case("gguf truncated header", _write(root / "short.gguf", header + b"\x01")),
        Case("gguf 2^60 tensors declared", _write(root / "many.gguf", header + struct.pack("<QQ", 1 << 60, 1 << 60))),
        Case("gguf random bytes", _write(root / "random.gguf", random.Random(7).randbytes(4096))),
    ]


def _folder_cases(root: Path) -> list[Case]:
    only_config = root / "hf_no_weights"
    _write(only_config / "config.json", b'{"model_type": "llama", "vocab_size": 100}')
    garbage = root / "hf_garbage_config"
    _write(garbage / "config.json", b"{ this is not json")
    alien = root / "hf_unknown_type"
    _write(alien / "config.json", b'{"model_type": "frobnicator-9000"}')
    _write(alien / "model.safetensors", struct.pack("<Q", 2) + b"{}")
    return [Case("hf folder without weights or tokenizer", only_config),
            Case("hf folder with a broken config.json", garbage), Case("hf folder of an unknown type", alien)]


def _filesystem_cases(root: Path) -> list[Case]:
    root.mkdir(parents=True, exist_ok=True)
    loop = root / "loop_a.onnx"
    os.symlink(root / "loop_b.onnx", loop)
    os.symlink(loop, root / "loop_b.onnx")
    os.symlink(root / "does-not-exist.onnx", root / "dangling_link.onnx")
    (root / "folder.onnx").mkdir()
    os.mkfifo(root / "fifo.onnx")  # opening it for reading would wait for a writer forever
    return [Case("symlink loop", loop), Case("dangling symlink", root / "dangling_link.onnx"),
            Case("folder named .onnx", root / "folder.onnx"), Case("fifo named .onnx", root / "fifo.onnx"),
            Case("unknown extension", _write(root / "model.xyz", b"whatever")),
            Case("no such file", root / "missing.onnx")]


def _video_cases(root: Path) -> list[Case]:
    from studio.media import bundled_video

    clip = bundled_video().read_bytes()
    return [Case("video empty", _write(root / "empty.mp4", b""), VIDEO),
            Case("video random bytes", _write(root / "random.mp4", random.Random(8).randbytes(65536)), VIDEO),
            Case("video that is text", _write(root / "text.avi", b"not a video at all\n"), VIDEO),
            Case("video header only", _write(root / "header.mp4", clip[:2048]), VIDEO)]


def _recipe_cases(root: Path) -> list[Case]:
    return [Case("recipe not TOML", _write(root / "broken.toml", b"[[steps]\nplugin = "), RECIPE),
            Case("recipe unknown plugin", _write(root / "unknown.toml",
                                                 b'version = 1\n[[steps]]\nplugin = "evil.payload"\n'), RECIPE),
            Case("recipe absurd setting", _write(root / "absurd.toml", (
                b'version = 1\n[[steps]]\nplugin = "prune.channels"\n[steps.settings]\nratio = 1e308\n')), RECIPE)]


def _real_tflite() -> bytes:
    """A real TFLite flatbuffer: one of mediapipe's wheel models, else a header that claims to be one."""
    import importlib.util

    spec = importlib.util.find_spec("mediapipe")
    if spec is not None and spec.submodule_search_locations:
        path = Path(spec.submodule_search_locations[0]) / "modules/face_detection/face_detection_short_range.tflite"
        if path.is_file():
            return path.read_bytes()
    return struct.pack("<I", 16) + b"TFL3" + random.Random(3).randbytes(4096)


def _tflite_cases(root: Path) -> list[Case]:
    real = _real_tflite()
    return [Case("tflite truncated at half", _write(root / "truncated.tflite", real[: len(real) // 2])),
            Case("tflite random bytes", _write(root / "random.tflite", random.Random(4).randbytes(8192)))]


def build_corpus(root: Path, canary: Path) -> list[Case]:
    root.mkdir(parents=True, exist_ok=True)
    cases = (_onnx_cases(root / "onnx") + _pt_cases(root / "pt", canary) + _yaml_cases(root / "yaml", canary)
             + _darknet_cases(root / "darknet") + _gguf_cases(root / "gguf") + _folder_cases(root / "folders")
             + _filesystem_cases(root / "fs") + _video_cases(root / "video") + _recipe_cases(root / "recipe")
             + _tflite_cases(root / "tflite"))
    names = [case.name for case in cases]
    assert len(set(names)) == len(names), "case names must be unique"
    return cases
