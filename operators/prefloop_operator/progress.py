"""The driver's progress report: what the driver tells the operator, and nothing else.

The driver Job patches one small ConfigMap, ``<run>-progress``, owned by the ActiveRun: after
every checkpoint (round, annotations used, reward-model version, held-out accuracy), when the
round's step changes, on a heartbeat, and once at the end (finished, stop reason, where the
dataset is, or the error). The operator never assumes progress: it reads this ConfigMap and the
Job's own status, and :mod:`prefloop_operator.status` derives the run's status from both.

A ConfigMap (rather than the ActiveRun's status) keeps one writer per object: the operator owns
the ActiveRun's status, the driver owns this ConfigMap and may touch nothing else (its Role is
limited to this one object by ``resourceNames``). Values are strings, as ConfigMaps require.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Literal

STOPPED_EXIT_CODE = 143
"""``prefloop driver`` stopped after a round on SIGTERM (suspend, eviction): not a failure."""
INVALID_EXIT_CODE = 2
"""``prefloop driver`` found the manifest or data invalid: retrying cannot help."""
DriverState = Literal["starting", "running", "stopped", "finished", "failed"]
"""``stopped``: left after a round on SIGTERM (suspend, eviction); resumes from the checkpoint."""


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with a ``Z`` (what Kubernetes date-time fields hold)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str | None) -> datetime.datetime | None:
    """An RFC 3339 time as an aware datetime, or None for missing / malformed text."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Progress:
    """One progress report of the driver."""

    state: DriverState = "starting"
    round: int = 0
    """Rounds completed and checkpointed."""
    annotations_used: int = 0
    reward_model_version: int = 0
    heldout_accuracy: float | None = None
    round_phase: str = ""
    """Step of the round in flight: Generating, Scoring, Acquiring, Judging, Training."""
    heartbeat: str = ""
    """When the driver last wrote (RFC 3339): a stale heartbeat means a lost driver."""
    stop_reason: str = ""
    dataset_location: str = ""
    error: str = ""

    def to_data(self) -> dict[str, str]:
        """The ConfigMap ``data`` (every value a string)."""
        acc = self.heldout_accuracy
        return {
            "state": self.state,
            "round": str(self.round),
            "annotationsUsed": str(self.annotations_used),
            "rewardModelVersion": str(self.reward_model_version),
            "heldoutAccuracy": "" if acc is None or math.isnan(acc) else f"{acc:.6g}",
            "roundPhase": self.round_phase,
            "heartbeat": self.heartbeat,
            "stopReason": self.stop_reason,
            "datasetLocation": self.dataset_location,
            "error": self.error,
        }

    @classmethod
    def from_data(cls, data: dict[str, str] | None) -> Progress | None:
        """Parse a ConfigMap's ``data``; None when the driver has not reported yet."""
        if not data or not data.get("state"):
            return None
        state = data["state"]
        if state not in ("starting", "running", "stopped", "finished", "failed"):
            state = "running"
        acc = data.get("heldoutAccuracy") or ""
        return cls(
            state=state,  # type: ignore[arg-type]
            round=_int(data.get("round")),
            annotations_used=_int(data.get("annotationsUsed")),
            reward_model_version=_int(data.get("rewardModelVersion")),
            heldout_accuracy=float(acc) if acc else None,
            round_phase=data.get("roundPhase", ""),
            heartbeat=data.get("heartbeat", ""),
            stop_reason=data.get("stopReason", ""),
            dataset_location=data.get("datasetLocation", ""),
            error=data.get("error", ""),
        )


def _int(text: str | None) -> int:
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0
