"""Outputs appear whole or not at all: staged files, scratch folders and the publish rename."""

from __future__ import annotations

import pytest

from studio.atomic import publish, scratch_folder, staged_file


def test_a_staged_file_replaces_the_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "model.onnx"
    with staged_file(target, suffix=".onnx") as tmp:
        assert tmp.suffix == ".onnx" and tmp.parent == target.parent and not target.exists()
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), staged_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the converter crashed")
    assert target.read_bytes() == b"new" and sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]


def test_publish_replaces_a_folder_whole_and_scratch_leaves_nothing(tmp_path):
    target = tmp_path / "model_openvino_model"
    target.mkdir()
    (target / "old.xml").write_text("old")
    with scratch_folder(target) as staging:
        (staging / "out").mkdir()
        (staging / "out" / "new.xml").write_text("new")
        publish(staging / "out", target)
    assert [p.name for p in target.iterdir()] == ["new.xml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_openvino_model"]  # no scratch, no old copy left
    with pytest.raises(ValueError), scratch_folder(target) as staging:
        (staging / "partial").write_text("x")
        raise ValueError("cancelled")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_openvino_model"]
