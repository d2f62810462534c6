"""The frame preview in the middle of the window: variant A's frames, or A's and B's side by side.

A ``LivePreview`` (studio.preview) runs the lanes on the state's source; this pane pulls its newest result
at ≤ 30 Hz (never one signal per frame) and refreshes the live charts at 5 Hz. Its toolbar controls are its
own: the source, Play / Pause, A/B, and each side's runtime and device (``studio.runtime.devices``, listed in
a side job: importing the runtimes is slow). Which variants are previewed, on what, and the running preview
itself, live in the window's ``WorkspaceState`` (``lanes``, ``lane_choices``, ``preview``).
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QCheckBox, QComboBox, QFileDialog, QLabel, QSplitter, QToolBar

from studio.media import bundled_video
from studio.preview import Lane, LivePreview
from studio.runtime.choice import IMAGE_RUNTIMES, Runtime, native_runtime
from studio.session import Session
from studio.workspace_state import DEFAULT_LANE_CHOICE, WorkspaceState
from ui.charts import ChartsPanel
from ui.frame_view import FrameView
from ui.jobs import JobRunner

FRAME_INTERVAL_MS = 33  # ≤ 30 Hz: the newest result is pulled, never one signal per frame
CHART_INTERVAL_MS = 200  # 5 Hz
PREVIEW_THREADS = 2


def camera_indices() -> list[int]:
    """Cameras worth offering: the /dev/video* nodes on Linux; index 0 elsewhere (opening is bounded)."""
    if sys.platform.startswith("linux"):
        return sorted(int(p.removeprefix("/dev/video")) for p in glob.glob("/dev/video*")
                      if p.removeprefix("/dev/video").isdigit())[:4]
    return [0]


class PreviewPane(QSplitter):
    status = Signal(str)
    source_chosen = Signal(str)  # a source the user picked in the toolbar (the window remembers it)

    def __init__(self, state: WorkspaceState, jobs: JobRunner, charts: ChartsPanel):
        super().__init__(Qt.Orientation.Horizontal)
        self.state, self.jobs, self.charts = state, jobs, charts
        self.views = [FrameView(), FrameView()]
        self.views[1].hide()
        for view in self.views:
            self.addWidget(view)
        self.source_combo = QComboBox()
        self.source_combo.setMinimumWidth(220)
        self.fill_sources()
        self.source_combo.activated.connect(self._on_source_chosen)
        self.play_action = QAction("Pause", self, triggered=self.toggle)
        self.ab_box = QCheckBox("A/B")
        self.ab_box.setToolTip("Show two variants side by side on the same frames")
        self.ab_box.toggled.connect(self._on_ab_toggled)
        self.runtime_combos, self.device_combos = [QComboBox(), QComboBox()], [QComboBox(), QComboBox()]
        for side, (runtime, device) in enumerate(zip(self.runtime_combos, self.device_combos, strict=True)):
            runtime.setObjectName(f"runtime_{'ab'[side]}")
            device.setObjectName(f"device_{'ab'[side]}")
            for choice in IMAGE_RUNTIMES:
                runtime.addItem(choice.value, choice.value)
            runtime.setToolTip(f"Runtime of side {'AB'[side]}: auto is the file's own (LiteRT for .tflite, OpenVINO "
                               "for an IR), else onnxruntime")
            device.setToolTip(f"Device of side {'AB'[side]}: those its runtime has on this machine")
            runtime.activated.connect(lambda _index, side=side: self._runtime_picked(side))
            device.activated.connect(lambda _index, side=side: self._device_picked(side))
        self.device_table: list[dict[str, Any]] | None = None  # studio.runtime.devices.table(), once listed
        # Files previewed beside a variant without being one (the Formats tab's "Preview this one"): lane key →
        # (the handle, the session it belongs beside). Dropped when another model opens.
        self.file_lanes: dict[str, tuple[Any, Session]] = {}
        self._listing_devices = False
        self.video_tips = {widget: widget.toolTip() for widget in (self.source_combo, self.ab_box)}
        self._shown = None
        self.frame_timer = QTimer(self, interval=FRAME_INTERVAL_MS, timeout=self._show_latest)
        self.chart_timer = QTimer(self, interval=CHART_INTERVAL_MS, timeout=self._refresh_charts)
        self.frame_timer.start()
        self.chart_timer.start()
        # The pane draws what the state says: the source list, side B's view, and Play / Pause.
        state.observe("source", lambda _spec: self.fill_sources())
        state.observe("lanes", self._lanes_changed)
        state.observe("preview", self._preview_changed)
        state.observe("lane_choices", lambda _choices: self.sync_lane_controls())
        state.observe("session", lambda _session: self.file_lanes.clear())
        self.sync_lane_controls()

    def add_controls(self, bar: QToolBar) -> None:
        bar.addWidget(QLabel(" Source "))
        bar.addWidget(self.source_combo)
        bar.addAction(self.play_action)
        bar.addWidget(self.ab_box)
        for side in range(2):
            bar.addWidget(QLabel(f"  {'AB'[side]} "))
            bar.addWidget(self.runtime_combos[side])
            bar.addWidget(self.device_combos[side])

    # -- sources ---------------------------------------------------------------------------------
    def fill_sources(self) -> None:
        combo, source = self.source_combo, self.state.source
        combo.clear()
        combo.addItem(Path(source).name or source, source)
        bikes = str(bundled_video("bikes.mp4"))
        if source != bikes:
            combo.addItem("bikes.mp4 (bundled)", bikes)
        for index in camera_indices():
            combo.addItem(f"Camera {index}", str(index))
        combo.addItem("Video file…", "@video")
        combo.addItem("Image folder…", "@folder")

    def _on_source_chosen(self, index: int) -> None:
        data = self.source_combo.itemData(index)
        if data == "@video":
            path, _ = QFileDialog.getOpenFileName(self, "Preview a video", "",
                                                  "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v);;All files (*)")
            data = path or None
        elif data == "@folder":
            data = QFileDialog.getExistingDirectory(self, "Preview an image folder") or None
        if data:
            self.source_chosen.emit(data)
        else:
            self.source_combo.setCurrentIndex(0)

    def set_video_controls(self, video: bool) -> None:
        """The toolbar's source, Play and A/B apply to a vision model; a language view has its own A/B."""
        if not video and self.ab_box.isChecked():
            self.ab_box.blockSignals(True)
            self.ab_box.setChecked(False)
            self.ab_box.blockSignals(False)
        reason = "" if video else "Language models have no video preview; their view has its own A/B."
        for widget in (self.source_combo, self.ab_box):
            widget.setEnabled(video)
            widget.setToolTip(reason or self.video_tips[widget])
        self.play_action.setEnabled(video)
        self.sync_lane_controls()

    # -- lanes -----------------------------------------------------------------------------------
    def make_lanes(self, session: Session, keys: list[str], ctx,
                   choices: list[tuple[str, str]] | None = None) -> list[Lane]:
        """One inference session per variant in ``keys`` on each side's (runtime, device), warmed up on the source's
        first frame (in a job). A model being opened (not yet the state's session) starts on the defaults."""
        from studio.sources import take_frames

        if choices is None:
            choices = (list(self.state.lane_choices) if session is self.state.session
                       else [DEFAULT_LANE_CHOICE, DEFAULT_LANE_CHOICE])

        warm = None
        try:
            warm = take_frames(self.state.source, 1)[0]
        except Exception:  # the preview reports a bad source itself; warming up is optional
            warm = None
        lanes = []
        for index, key in enumerate(keys):
            ctx.check_cancelled()
            runtime, device = choices[index]
            lanes.append(Lane.create(key, self._handle(session, key), runtime=runtime, device=device,
                                     threads=PREVIEW_THREADS, warmup_frame=warm))
            ctx.progress(0.6 + 0.4 * (index + 1) / len(keys), f"session for {key} ready")
        return lanes

    def show_variants(self, keys: list[str]) -> None:
        """Preview ``keys`` (A, or A and B): their sessions are made in a side job, then the preview starts."""
        session = self.state.session
        if session is None or not keys:
            return
        self.jobs.side("preparing the preview", lambda ctx: self.make_lanes(session, keys, ctx),
                       done=lambda lanes: self.start(keys, lanes),
                       error=lambda message: self.status.emit(f"preparing the preview: {message}"))

    def _handle(self, session: Session, key: str) -> Any:
        file_lane = self.file_lanes.get(key)
        if file_lane is not None and file_lane[1] is session:
            return file_lane[0]
        return session.get(key).handle

    def preview_file(self, path: str, label: str) -> None:
        """``path`` (an exported file) as side B beside side A, in its own runtime (side B's choice resets to auto):
        loaded and warmed up in a side job; a file that cannot open or run is one status line."""
        from studio.loaders import load_model

        session = self.state.session
        if session is None:
            return
        key = f"{label} file"
        side_a = self.state.lanes[0] if self.state.lanes else "base"
        choices = [self.state.lane_choices[0], DEFAULT_LANE_CHOICE]

        def make(ctx) -> list[Lane]:
            self.file_lanes[key] = (load_model(path), session)
            return self.make_lanes(session, [side_a, key], ctx, choices)

        def made(lanes: list[Lane]) -> None:
            if self.state.session is not session:
                return
            self.state.set_lane_choice(1, *DEFAULT_LANE_CHOICE)
            self.ab_box.blockSignals(True)
            self.ab_box.setChecked(True)
            self.ab_box.blockSignals(False)
            self.start([side_a, key], lanes)

        self.jobs.side(f"previewing {label}", make, done=made,
                       error=lambda message: self.status.emit(f"previewing {label}: {message}"))

    def show_as_b(self, key: str) -> None:
        self.ab_box.blockSignals(True)
        self.ab_box.setChecked(True)
        self.ab_box.blockSignals(False)
        self.show_variants([self.state.lanes[0] if self.state.lanes else "base", key])

    def _on_ab_toggled(self, on: bool) -> None:
        lanes = self.state.lanes
        if not lanes:
            return
        if on:
            other = next((v.key for v in reversed(self.state.session.variants) if v.key != lanes[0]), None)
            if other is None:
                self.status.emit("A/B needs a second variant: run a plugin first.")
                self.ab_box.setChecked(False)
                return
            self.show_variants([lanes[0], other])
        else:
            self.show_variants(lanes[:1])

    # -- each side's runtime and device -----------------------------------------------------------
    def choose_lane(self, side: int, runtime: str, device: str) -> None:
        """Run side ``side`` (0: A, 1: B) on ``runtime`` and ``device``: the lanes are made again in a side job and
        the preview restarts on them; a refusal (a device not here, LiteRT without a .tflite) is one status line
        and the running lanes stay."""
        session, keys = self.state.session, list(self.state.lanes)
        if session is None or side >= len(keys):
            self.state.set_lane_choice(side, runtime, device)  # made when that side is next shown
            return
        choices = list(self.state.lane_choices)
        choices[side] = (runtime, device)
        self.jobs.side(f"side {'AB'[side]} on {runtime} · {device}",
                       lambda ctx: self.make_lanes(session, keys, ctx, choices),
                       done=lambda lanes: self._lane_chosen(session, keys, choices, lanes),
                       error=lambda message: self._lane_refused(side, message))

    def _lane_chosen(self, session: Session, keys: list[str], choices: list[tuple[str, str]],
                     lanes: list[Lane]) -> None:
        if self.state.session is not session:
            return  # another model was opened meanwhile
        for side, (runtime, device) in enumerate(choices):
            if (runtime, device) != self.state.lane_choices[side]:
                self.state.set_lane_choice(side, runtime, device)
        self.start(keys, lanes)

    def _lane_refused(self, side: int, message: str) -> None:
        preview = self.state.preview
        kept = preview.lanes[side].runs_on if preview is not None and side < len(preview.lanes) else None
        self.status.emit(f"Side {'AB'[side]}: {message}" + (f" (still on {kept})" if kept else ""))
        self.sync_lane_controls()  # the combos go back to what runs

    def _runtime_picked(self, side: int) -> None:
        runtime = self.runtime_combos[side].currentData()
        self._fill_devices(side, runtime, self.state.lane_choices[side][1])
        self.choose_lane(side, runtime, self.device_combos[side].currentData())

    def _device_picked(self, side: int) -> None:
        self.choose_lane(side, self.runtime_combos[side].currentData(), self.device_combos[side].currentData())

    def _device_runtime(self, side: int, runtime: str) -> str:
        """The runtime whose devices side ``side`` offers: "auto" is its model's own runtime."""
        if runtime != Runtime.AUTO:
            return runtime
        session, keys = self.state.session, self.state.lanes
        key = keys[side] if side < len(keys) else "base"
        if session is not None:
            try:
                return native_runtime(self._handle(session, key)).value
            except Exception:  # a variant removed meanwhile: offer onnxruntime's, the usual one
                pass
        return Runtime.ORT.value

    def _fill_devices(self, side: int, runtime: str, wanted: str) -> None:
        combo, shown = self.device_combos[side], self._device_runtime(side, runtime)
        combo.clear()
        rows = [row for row in self.device_table or [] if row["runtime"] == shown and row.get("device")]
        for row in rows:
            combo.addItem(f"{row['device']} · {row['name']}", row["device"])
        if not rows:  # not listed yet (or the runtime cannot load): the CPU, which every runtime has
            combo.addItem("cpu", "cpu")
        found = next((i for i in range(combo.count()) if str(combo.itemData(i)).lower() == wanted.lower()), 0)
        combo.setCurrentIndex(found)

    def sync_lane_controls(self) -> None:
        """The combos show the state's choices; B's apply only while B is shown, neither to a language model."""
        video = self.play_action.isEnabled()
        for side, (runtime, device) in enumerate(self.state.lane_choices):
            combo = self.runtime_combos[side]
            combo.setCurrentIndex(max(combo.findData(runtime), 0))
            self._fill_devices(side, runtime, device)
            enabled = video and (side == 0 or len(self.state.lanes) > 1)
            combo.setEnabled(enabled)
            self.device_combos[side].setEnabled(enabled)

    def _list_devices(self) -> None:
        """Each runtime's devices, once, off the GUI thread (importing openvino and torch takes seconds)."""
        if self.device_table is not None or self._listing_devices:
            return
        self._listing_devices = True

        def listed(rows: list[dict[str, Any]]) -> None:
            self.device_table = rows
            self.sync_lane_controls()

        def failed(message: str) -> None:
            self._listing_devices = False
            self.status.emit(f"listing the devices: {message}")

        from studio.runtime.devices import table

        self.jobs.side("listing the devices", lambda ctx: table(), done=listed, error=failed)

    # -- play / pause ----------------------------------------------------------------------------
    def start(self, keys: list[str], lanes: list[Lane]) -> None:
        """Preview ``keys`` with their ready ``lanes`` (one per key) on the state's source."""
        self.stop()
        self.state.set_lanes(keys)
        self.state.set_preview(LivePreview(self.state.source, lanes).start())
        self.sync_lane_controls()
        self._list_devices()

    def stop(self) -> None:
        """Stop the preview; the lanes are kept, so Play starts it again on the same variants."""
        if self.state.preview is not None:
            self.state.preview.stop(timeout=0.0)  # threads are told to stop; the GUI does not wait on them
            self.state.set_preview(None)

    def _lanes_changed(self, keys: list[str]) -> None:
        self.views[1].setVisible(len(keys) > 1)
        if len(keys) > 1:
            half = max(self.width() // 2, 1)
            self.setSizes([half, half])

    def _preview_changed(self, preview: LivePreview | None) -> None:
        self.play_action.setText("Play" if preview is None else "Pause")

    def close_down(self) -> LivePreview | None:
        """The window closes: the timers stop and the preview is told to; it is returned, to be joined."""
        self.frame_timer.stop()
        self.chart_timer.stop()
        preview = self.state.preview
        self.stop()
        return preview

    def toggle(self) -> None:
        if self.state.preview is not None:
            self.stop()
        elif self.state.lanes:
            self.show_variants(self.state.lanes)

    # -- drawing ---------------------------------------------------------------------------------
    def _show_latest(self) -> None:
        preview = self.state.preview
        if preview is None:
            return
        if preview.error:
            self.status.emit(f"Preview stopped: {preview.error}")
            self.stop()
            return
        snapshot = preview.latest()
        if snapshot is None or snapshot is self._shown:
            return
        self._shown = snapshot
        for index, prediction in enumerate(snapshot.predictions):
            lane = preview.lanes[index]
            fps = lane.fps()
            caption = (f"{'AB'[index]} · {self.lane_title(lane.name)} · {lane.runs_on} · "
                       f"{'–' if fps is None else f'{fps:.1f}'} fps · {prediction.times.total:.1f} ms")
            if snapshot.disagreements is not None:
                caption += f" · {snapshot.disagreements} disagreements"
            self.views[index].show_frame(snapshot.frame, prediction.result, caption)

    def lane_title(self, key: str) -> str:
        session = self.state.session
        if key in self.file_lanes:
            return key
        title = session.get(key).title if session else key
        return title if key == "base" else f"{key}: {title}"

    def _refresh_charts(self) -> None:
        preview = self.state.preview
        names = ([f"{self.lane_title(lane.name)} · {lane.runs_on}" for lane in preview.lanes]
                 if preview is not None and self.state.session else [])
        self.charts.refresh(preview, names, [lane.model_mb for lane in preview.lanes] if preview else [])
