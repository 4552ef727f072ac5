"""A small IoU tracker: each object keeps an id over frames, and events say when one appears and
when it leaves.

Per frame, every live track is matched to the detection of the same class that overlaps its
last box most (greedy on IoU, best pairs first, at least ``iou``); unmatched detections start
tentative tracks. A track is *confirmed* after ``min_hits`` matched frames (one-frame flickers
never make an event) and then gets its id and an ``appear`` event; it *leaves* after
``max_missed`` frames without a match (short occlusions do not split it). Ids count up from 1
in order of confirmation; tentative tracks show ``track_id`` -1. This is the association step
of SORT/ByteTrack without the motion model: enough at camera frame rates, where boxes move
little between frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apps.camera.detections import Detections, box_iou


@dataclass(frozen=True)
class TrackEvent:
    """``event``: ``appear`` or ``leave``; ``frame`` / ``t`` (seconds since the run began) when
    it happened; ``box`` the object's last box in pixels; ``seen_frames`` and ``duration_s`` how
    long it was tracked (at leave)."""

    event: str
    track_id: int
    class_id: int
    label: str | None
    frame: int
    t: float
    box: tuple[float, float, float, float]
    score: float
    seen_frames: int = 0
    duration_s: float = 0.0

    def to_dict(self) -> dict:
        row = {"event": self.event, "track_id": self.track_id, "label": self.label, "class_id": self.class_id,
               "frame": self.frame, "t": round(self.t, 4), "box": [round(v, 2) for v in self.box],
               "score": round(self.score, 4)}
        if self.event == "leave":
            row.update(seen_frames=self.seen_frames, duration_s=round(self.duration_s, 3))
        return row


class _Track:
    __slots__ = ("track_id", "class_id", "label", "box", "score", "hits", "missed", "first_t", "last_frame", "last_t")

    def __init__(self, class_id, label, box, score, t, frame):
        self.track_id = -1
        self.class_id, self.label, self.box, self.score = class_id, label, box, score
        self.hits, self.missed, self.first_t, self.last_frame, self.last_t = 1, 0, t, frame, t


class IouTracker:
    def __init__(self, iou: float = 0.3, min_hits: int = 3, max_missed: int = 10):
        if not 0 < iou <= 1 or min_hits < 1 or max_missed < 0:
            raise ValueError(f"tracker needs 0 < iou <= 1, min_hits >= 1, max_missed >= 0; got {iou}, {min_hits}, "
                             f"{max_missed}")
        self.iou, self.min_hits, self.max_missed = iou, min_hits, max_missed
        self._tracks: list[_Track] = []
        self._next_id = 1

    @property
    def active(self) -> int:
        """Confirmed tracks alive now."""
        return sum(1 for t in self._tracks if t.track_id > 0)

    @property
    def total(self) -> int:
        """Tracks confirmed so far."""
        return self._next_id - 1

    def update(self, detections: Detections, frame: int, t: float) -> tuple[Detections, list[TrackEvent]]:
        """``detections`` with ``track_ids`` set, and the events of this frame."""
        events: list[TrackEvent] = []
        ids = np.full(len(detections), -1, np.int64)
        matched_tracks: set[int] = set()
        track_of: dict[int, int] = {}  # matched track index -> detection index
        if self._tracks and len(detections):
            boxes = np.array([tr.box for tr in self._tracks], np.float32)
            iou = box_iou(boxes, detections.xyxy)
            same_class = np.array([tr.class_id for tr in self._tracks])[:, None] == detections.class_ids[None, :]
            iou = np.where(same_class, iou, 0.0)
            pairs = np.argwhere(iou >= self.iou)
            order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")
            used_dets: set[int] = set()
            for ti, di in pairs[order]:
                if ti in matched_tracks or di in used_dets:
                    continue
                matched_tracks.add(int(ti))
                used_dets.add(int(di))
                track = self._tracks[ti]
                track.box, track.score = tuple(detections.xyxy[di].tolist()), float(detections.scores[di])
                track.hits += 1
                track.missed = 0
                track.last_frame, track.last_t = frame, t
                track_of[int(ti)] = int(di)
        else:
            used_dets = set()
        for ti in sorted(track_of):  # confirm in order of first sight, so ids follow it
            track = self._tracks[ti]
            if track.track_id < 0 and track.hits >= self.min_hits:
                track.track_id = self._next_id
                self._next_id += 1
                events.append(self._event("appear", track, frame, t))
            ids[track_of[ti]] = track.track_id
        survivors = []
        for i, track in enumerate(self._tracks):
            if i not in matched_tracks:
                track.missed += 1
                if track.missed > self.max_missed:
                    if track.track_id > 0:
                        events.append(self._event("leave", track, frame, t))
                    continue
            survivors.append(track)
        for di in range(len(detections)):
            if di not in used_dets:
                track = _Track(int(detections.class_ids[di]), detections.labels[di],
                               tuple(detections.xyxy[di].tolist()), float(detections.scores[di]), t, frame)
                if self.min_hits <= 1:
                    track.track_id = self._next_id
                    self._next_id += 1
                    events.append(self._event("appear", track, frame, t))
                    ids[di] = track.track_id
                survivors.append(track)
        self._tracks = survivors
        return detections.with_track_ids(ids), events

    def finish(self, frame: int, t: float) -> list[TrackEvent]:
        """``leave`` events for the objects still tracked when the run ends."""
        events = [self._event("leave", tr, frame, t) for tr in self._tracks if tr.track_id > 0]
        self._tracks = []
        return events

    def _event(self, kind: str, track: _Track, frame: int, t: float) -> TrackEvent:
        return TrackEvent(kind, track.track_id, track.class_id, track.label, frame, t, track.box, track.score,
                          seen_frames=track.hits, duration_s=track.last_t - track.first_t)
