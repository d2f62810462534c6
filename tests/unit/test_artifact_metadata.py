"""The metadata the studio writes into its files reads back as the same pre-processing; bad values are refused."""

from __future__ import annotations

import json

import pytest

from studio.artifact_metadata import (
    DECODER_KEY,
    PREPROCESS_KEY,
    artifact_metadata,
    image_input_from_metadata,
    is_studio_metadata,
)
from studio.errors import BadInputError
from studio.model import ImageInput, Resize, Task, TensorSpec
from tests.unit.handles import handle

INPUTS = [
    ImageInput((224, 224), resize=Resize.CENTER_CROP, mean=127.0, scale=1 / 128.0),
    ImageInput((416, 416), resize=Resize.STRETCH),
    ImageInput((480, 640), resize=Resize.LETTERBOX, rgb=False, stride=64, dynamic=True, pad_value=0,
               crop_fraction=1.0),
]


@pytest.mark.parametrize("image", INPUTS)
def test_image_input_round_trips_through_the_metadata(image):
    meta = artifact_metadata(handle(image_input=image))
    assert is_studio_metadata(meta)
    assert image_input_from_metadata(meta, "model.onnx") == image


def test_labels_task_and_decoder_are_written():
    meta = artifact_metadata(handle("net", Task.CLASSIFY, decoder="classify-logits", labels=("cat", "dog")))
    assert meta["task"] == "classify" and meta[DECODER_KEY] == "classify-logits"
    assert meta["names"] == repr({0: "cat", 1: "dog"})


def test_a_model_without_images_has_no_preprocess():
    meta = artifact_metadata(handle(task=Task.TENSOR, image_input=None))
    assert PREPROCESS_KEY not in meta and image_input_from_metadata(meta) is None


def test_missing_fields_take_the_defaults():
    meta = {PREPROCESS_KEY: json.dumps({"resize": "stretch", "future_field": 3}), "imgsz": "[320, 256]"}
    assert image_input_from_metadata(meta) == ImageInput((320, 256), resize=Resize.STRETCH)
    assert image_input_from_metadata(meta, default_size=(96, 96)).size == (96, 96)
    assert image_input_from_metadata({PREPROCESS_KEY: "{}"}).size == (640, 640)


def test_third_party_metadata_is_not_the_studios():
    assert not is_studio_metadata({"author": "Ultralytics", "task": "detect", "names": "{0: 'a'}", "stride": "32"})


@pytest.mark.parametrize(("value", "message"), [
    ("{not json", "is not JSON"),
    ("[1, 2]", "not an object"),
    ('{"size": [0, 224]}', "has size"),
    ('{"size": [224]}', "has size"),
    ('{"size": [true, 224]}', "has size"),
    ('{"resize": "squash"}', "has resize 'squash'"),
    ('{"scale": 0}', "has scale 0"),
    ('{"mean": "127"}', "has mean 127"),
    ('{"rgb": 1}', "has rgb 1"),
    ('{"crop_fraction": 1.5}', "has crop_fraction 1.5"),
    ('{"stride": 0}', "has stride 0"),
    ('{"pad_value": 300}', "has pad_value 300"),
    ('{"mean": NaN}', "has mean nan"),
    ('"' + "x" * 70_000 + '"', "characters long"),
])
def test_malformed_preprocess_is_refused_in_one_line_naming_the_file(value, message):
    with pytest.raises(BadInputError, match=message) as info:
        image_input_from_metadata({PREPROCESS_KEY: value}, "/models/bad.onnx")
    text = str(info.value)
    assert text.startswith("/models/bad.onnx: ") and "\n" not in text and PREPROCESS_KEY in text


def test_a_pose_models_keypoint_shape_survives_its_export():
    # 102 extra channels read as [34, 3] by default; a [51, 2] model would be decoded wrongly without its metadata.
    from studio.loaders.ultralytics_support import task_decode_fields

    pose = handle(task=Task.POSE, outputs=(TensorSpec("output0", (1, 4 + 3 + 102, 8400), "float32"),),
                  metadata={"kpt_shape": "[51, 2]", "end2end": "False"})
    meta = artifact_metadata(pose)
    assert meta["kpt_shape"] == "[51, 2]" and meta["end2end"] == "False"
    assert task_decode_fields(Task.POSE, meta, pose.outputs, pose.labels)[0] == (51, 2)
    assert "kpt_shape" not in artifact_metadata(handle())
