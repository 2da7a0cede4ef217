"""What a dock widget shows of a controller's work, as an evented dataclass it observes.

A controller (one per image for segmentation, one per widget for tracking) writes its status
line and whether a job runs into a :class:`RunState`; the widget connects to
``state.events.<field>`` and reads the fields when it redraws. So there are no relay methods
carrying the same value from job to controller to widget, and the widget can combine the states
of several controllers: its Stop button is enabled while *any* image's run is in progress, not
only the image its combo shows now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from psygnal import SignalGroupDescriptor

__all__ = ["RunState"]


def _never_equal(_old: object, _new: object) -> bool:
    """Equality for ``status``: every sentence is news, even when it repeats the last one
    (another controller may have written the widget's status line in between)."""
    return False


@dataclass
class RunState:
    """A controller's status line and whether its job (a propagation, a tracking run) runs.

    ``events.status`` fires on every assignment; ``events.running`` only when the value
    changes. ``running`` is True from the moment the job's worker is started until its
    ``finished`` has been handled by the controller (results kept, layers tidied), so a widget
    redrawing on the change sees the controller's final state.
    """

    events: ClassVar[SignalGroupDescriptor] = SignalGroupDescriptor(
        equality_operators={"status": _never_equal}
    )

    status: str = ""
    running: bool = False
