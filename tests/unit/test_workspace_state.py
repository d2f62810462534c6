"""The window's state without Qt: each change is stored, then told to its observers, in order."""

from __future__ import annotations

import pytest

from studio.workspace_state import WorkspaceState


def test_observers_see_each_change_after_it_is_stored():
    state = WorkspaceState("bikes.mp4")
    seen = []
    state.observe("source", lambda spec: seen.append(("first", spec, state.source)))
    state.observe("source", lambda spec: seen.append(("second", spec)))
    state.observe("lanes", lambda keys: seen.append(("lanes", keys)))
    state.set_source(0)
    state.set_lanes(("base", "v1"))
    assert seen == [("first", "0", "0"), ("second", "0"), ("lanes", ["base", "v1"])]
    assert state.source == "0" and state.lanes == ["base", "v1"]
    assert state.session is None and state.preview is None and state.last_export is None


def test_recent_models_are_newest_first_unique_and_bounded():
    state = WorkspaceState("bikes.mp4", recent=["a", "b", "c"], max_recent=3)
    lists = []
    state.observe("recent", lists.append)
    state.remember_recent("b")
    state.remember_recent("d")
    assert lists == [["b", "a", "c"], ["d", "b", "a"]] and state.recent == ["d", "b", "a"]


def test_an_unknown_event_is_refused():
    with pytest.raises(ValueError, match="no event 'sources'"):
        WorkspaceState("bikes.mp4").observe("sources", print)



def test_each_side_keeps_its_runtime_and_device_until_another_model_opens():
    state = WorkspaceState("bikes.mp4")
    seen = []
    state.observe("lane_choices", seen.append)
    assert state.lane_choices == [("auto", "cpu"), ("auto", "cpu")]
    state.set_lane_choice(0, "torch", "cuda:0")
    state.set_lane_choice(1, "openvino", "GPU")
    assert state.lane_choices == [("torch", "cuda:0"), ("openvino", "GPU")]
    state.set_session(None)  # another model: a choice made for one may not exist for the next
    assert state.lane_choices == [("auto", "cpu"), ("auto", "cpu")]
    assert seen == [[("torch", "cuda:0"), ("auto", "cpu")], [("torch", "cuda:0"), ("openvino", "GPU")],
                    [("auto", "cpu"), ("auto", "cpu")]]
    state.set_session(None)
    assert len(seen) == 3  # already the defaults: nothing to tell
