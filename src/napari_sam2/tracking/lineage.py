"""Who descends from whom, and when: typed track bookkeeping for a tracked time-lapse.

A :class:`Track` is one cell between two events (appearance, division, disappearance); its id
is the value it has in the Labels layer. A :class:`Division` links a mother that ends on frame
``t - 1`` to daughters that start on frame ``t``. The same facts feed the napari Tracks layer
(``graph = {child: [parent]}``, :mod:`.tracks`) and the CTC ``res_track.txt`` ("L B E P").

The tracker changes its lineage only through :meth:`Lineage.apply` of a
:data:`LineageEvent` (a track started, was seen, ended or divided) and hands each frame's
events out with the frame, so a copy elsewhere (the widget's, on napari's main thread) that
applies the same events in order is the same lineage, without the whole of it travelling on
every frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Division",
    "DivisionRule",
    "Lineage",
    "LineageEvent",
    "Track",
    "TrackDivided",
    "TrackEnded",
    "TrackStarted",
    "TrackTrimmed",
    "TracksSeen",
]

DivisionRule = Literal["split", "waist", "area_drop", "manual"]


@dataclass
class Track:
    """One cell's track: present from ``start`` to ``end`` (inclusive), child of ``parent``.

    ``active`` is True while the tracker still follows the cell; a closed track keeps its
    last present frame as ``end``.
    """

    track_id: int
    start: int
    end: int
    parent: int = 0
    active: bool = True


@dataclass
class Division:
    """A mother track that ends where its daughters (starting on ``frame``) begin.

    ``rule`` says what found it (``split``: the mask fell apart; ``waist``: it showed two lobes
    joined by a narrow waist; ``area_drop``: it halved while
    a sister appeared; ``manual``: a person said so). Automatic divisions start unconfirmed so
    a reviewer can step through them.
    """

    mother: int
    daughters: tuple[int, ...]
    frame: int
    rule: DivisionRule
    confirmed: bool = False


@dataclass(frozen=True)
class TrackStarted:
    """A new track ``track_id`` (child of ``parent``, 0: none) begins on ``frame``."""

    frame: int
    track_id: int
    parent: int = 0


@dataclass(frozen=True)
class TracksSeen:
    """The tracks ``track_ids`` have a mask on ``frame`` (their ``end`` moves up to it)."""

    frame: int
    track_ids: tuple[int, ...]


@dataclass(frozen=True)
class TrackEnded:
    """The tracker stops following ``track_id``; ``frame`` is its last present frame."""

    frame: int
    track_id: int


@dataclass(frozen=True)
class TrackTrimmed:
    """``track_id`` now ends on ``frame``: its later frames were given to its daughters (a
    division found late and dated back to where it began)."""

    frame: int
    track_id: int


@dataclass(frozen=True)
class TrackDivided:
    """``mother`` (absent on ``frame``) divides into ``daughters``, which start on ``frame``."""

    frame: int
    mother: int
    daughters: tuple[int, ...]
    rule: DivisionRule


#: One change to a lineage, in the order the tracker made it.
LineageEvent = TrackStarted | TracksSeen | TrackEnded | TrackTrimmed | TrackDivided


class Lineage:
    """Tracks by id plus the divisions that link them; ids are never reused."""

    def __init__(self) -> None:
        self.tracks: dict[int, Track] = {}
        self.divisions: dict[int, Division] = {}  # by mother id
        self._next_id = 1

    # ------------------------------------------------------------------ building
    def next_id(self) -> int:
        """The id the next new track will get (one above every id seen so far)."""
        return self._next_id

    def new_ids(self, n: int) -> tuple[int, ...]:
        """The ids the next ``n`` new tracks will get (what :meth:`divide` gives daughters)."""
        return tuple(range(self._next_id, self._next_id + n))

    def apply(self, event: LineageEvent) -> None:
        """Make one change; lineages that apply the same events in order stay equal."""
        match event:
            case TrackStarted(frame, track_id, parent):
                self.add_track(frame, parent=parent, track_id=track_id)
            case TracksSeen(frame, track_ids):
                for track_id in track_ids:
                    self.mark_present(track_id, frame)
            case TrackEnded(_, track_id):
                self.close(track_id)
            case TrackTrimmed(frame, track_id):
                self.tracks[track_id].end = int(frame)
            case TrackDivided(frame, mother, daughters, rule):
                self._divide(mother, frame, daughters, rule)
            case _:
                raise TypeError(f"not a lineage event: {event!r}")

    def apply_all(self, events: Iterable[LineageEvent]) -> None:
        """:meth:`apply` each event in order (one frame's ``lineage_events``)."""
        for event in events:
            self.apply(event)

    def add_track(self, start: int, parent: int = 0, track_id: int | None = None) -> Track:
        """A new track starting on ``start``; ``track_id`` None picks the next free id."""
        if track_id is None:
            track_id = self._next_id
        track_id = int(track_id)
        if track_id < 1:
            raise ValueError(f"track ids must be positive integers, got {track_id}")
        if track_id in self.tracks:
            raise ValueError(f"track id {track_id} is already used")
        if parent and parent not in self.tracks:
            raise ValueError(f"parent track {parent} of new track {track_id} does not exist")
        track = Track(track_id, int(start), int(start), int(parent))
        self.tracks[track_id] = track
        self._next_id = max(self._next_id, track_id + 1)
        return track

    def mark_present(self, track_id: int, frame: int) -> None:
        """The track has a mask on ``frame`` (frames arrive in order)."""
        track = self.tracks[track_id]
        track.end = max(track.end, int(frame))

    def close(self, track_id: int) -> None:
        """The tracker stops following this cell; its end stays its last present frame."""
        self.tracks[track_id].active = False

    def divide(
        self, mother: int, frame: int, n_daughters: int = 2, rule: DivisionRule = "split"
    ) -> tuple[int, ...]:
        """End ``mother`` before ``frame`` and start ``n_daughters`` children on ``frame``."""
        return self._divide(mother, frame, self.new_ids(n_daughters), rule)

    def _divide(
        self, mother: int, frame: int, daughters: tuple[int, ...], rule: DivisionRule
    ) -> tuple[int, ...]:
        track = self.tracks[mother]
        if track.end >= frame:
            raise ValueError(
                f"track {mother} is present on frame {track.end}, so it cannot divide into "
                f"daughters starting on frame {frame}"
            )
        if mother in self.divisions:
            raise ValueError(
                f"track {mother} already divided on frame {self.divisions[mother].frame}"
            )
        self.close(mother)
        for daughter in daughters:
            self.add_track(frame, parent=mother, track_id=daughter)
        self.divisions[mother] = Division(mother, tuple(daughters), int(frame), rule)
        return tuple(daughters)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self.tracks)

    def __iter__(self) -> Iterator[Track]:
        return iter(sorted(self.tracks.values(), key=lambda t: t.track_id))

    def __contains__(self, track_id: object) -> bool:
        return track_id in self.tracks

    def __getitem__(self, track_id: int) -> Track:
        return self.tracks[track_id]

    def active_ids(self) -> list[int]:
        return [t.track_id for t in self if t.active]

    def children(self, track_id: int) -> list[int]:
        return sorted(t.track_id for t in self.tracks.values() if t.parent == track_id)

    def parents(self) -> dict[int, int]:
        """``{child: parent}`` for every track with a parent."""
        return {t.track_id: t.parent for t in self if t.parent}

    def graph(self) -> dict[int, list[int]]:
        """napari's Tracks ``graph``: ``{child: [parent]}``."""
        return {child: [parent] for child, parent in self.parents().items()}

    def rows(self) -> list[tuple[int, int, int, int]]:
        """CTC-style ``(L, B, E, P)`` rows, sorted by id."""
        return [(t.track_id, t.start, t.end, t.parent) for t in self]

    # ------------------------------------------------------------------ serialising
    def to_dict(self) -> dict[str, Any]:
        """Plain data for layer metadata or JSON: rows and divisions."""
        return {
            "tracks": [list(row) for row in self.rows()],
            "divisions": [
                {
                    "mother": d.mother,
                    "daughters": list(d.daughters),
                    "frame": d.frame,
                    "rule": d.rule,
                    "confirmed": d.confirmed,
                }
                for d in self.divisions.values()
            ],
        }

    @classmethod
    def from_rows(
        cls, rows: Iterable[Iterable[int]], divisions: Iterable[Mapping[str, Any]] = ()
    ) -> Lineage:
        """A lineage from ``(L, B, E, P)`` rows (e.g. a CTC file), all tracks closed.

        Parents with two or more children become divisions (rule ``manual``, confirmed) unless
        ``divisions`` describes them.
        """
        lineage = cls()
        table = sorted((tuple(int(v) for v in row) for row in rows), key=lambda r: r[1])
        known = {r[0] for r in table}
        for label, _, _, parent in table:
            if parent and parent not in known:
                raise ValueError(f"track {label} names parent {parent}, which is not a track")
        pending = list(table)
        while pending:  # parents first, whatever the order of the rows
            ready = [r for r in pending if not r[3] or r[3] in lineage.tracks]
            if not ready:
                raise ValueError(
                    f"the parent links of tracks {[r[0] for r in pending]} form a cycle"
                )
            for label, start, end, parent in ready:
                track = lineage.add_track(start, parent=parent, track_id=label)
                track.end, track.active = end, False
            pending = [r for r in pending if r not in ready]
        described = {int(d["mother"]): d for d in divisions}
        for mother in {t.parent for t in lineage.tracks.values() if t.parent}:
            kids = tuple(lineage.children(mother))
            d = described.get(mother)
            if d is not None:
                lineage.divisions[mother] = Division(
                    mother,
                    tuple(int(k) for k in d["daughters"]),
                    int(d["frame"]),
                    d["rule"],
                    bool(d.get("confirmed", False)),
                )
            elif len(kids) >= 2:
                frame = min(lineage.tracks[k].start for k in kids)
                lineage.divisions[mother] = Division(mother, kids, frame, "manual", True)
        return lineage

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lineage:
        """The inverse of :meth:`to_dict`."""
        return cls.from_rows(data.get("tracks", ()), data.get("divisions", ()))
