"""The training side's split into training and choosing runs (recovery's checkpoint, early exit's threshold)."""

from studio.recovery.distill import CHOOSING_HELD_OUT, CHOOSING_RUNS
from studio.train_data import choosing_split, spread


def test_recovery_choosing_runs_are_whole_runs_from_all_along_the_training_side():
    frames = list(range(160))
    training, choosing = choosing_split(frames, CHOOSING_RUNS, CHOOSING_HELD_OUT)
    assert not set(training) & set(choosing) and sorted(training + choosing) == frames
    starts = [f for f in choosing if f - 1 not in choosing]
    assert len(starts) == len(CHOOSING_HELD_OUT)  # whole contiguous runs …
    assert starts[0] < 40 and starts[-1] > 120  # … from the start of the side to its end, not one corner


def test_too_few_frames_for_the_runs_still_leaves_something_to_train_and_to_choose_on():
    for count in (1, 3, 5, 10, 15):
        training, choosing = choosing_split(list(range(count)), CHOOSING_RUNS, CHOOSING_HELD_OUT)
        assert training and choosing


def test_spread_takes_evenly_spaced_items_with_both_ends():
    assert spread(list(range(10)), 20) == list(range(10))
    picked = spread(list(range(100)), 5)
    assert picked[0] == 0 and picked[-1] == 99 and len(set(picked)) == 5


def test_spans_are_held_out_exactly_as_their_frames_would_be_as_a_list():
    """An INT8 search holds runs of the calibration side out on spans (nothing read to cut them): the same frames
    ``choosing_split`` would hold out of the flattened list, across span and file boundaries."""
    from pathlib import Path

    from studio.data import Span, hold_out

    spans = (Span(Path("a.mp4"), 0, 37), Span(Path("b.mp4"), 100, 150), Span(Path("c.jpg"), 0, 1),
             Span(Path("d.mp4"), 5, 60))

    def frames(side):
        return [(s.path, i) for s in side for i in range(s.start, s.stop)]

    kept, held = hold_out(spans)
    assert (frames(kept), frames(held)) == choosing_split(frames(spans))  # its defaults: two runs of eight
    assert hold_out(spans[2:3]) == (spans[2:3], spans[2:3])  # one frame: nothing to cut, it serves both
