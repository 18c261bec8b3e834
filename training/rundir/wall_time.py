"""The wall time of a whole run across its segments (the first process and each resume): every segment's training
seconds are kept in <model_dir>/wall_time.json at each checkpoint, so the final line can give both the segment's
and the run's. A segment killed without a stop (SIGKILL, a lost machine) counts up to its last checkpoint."""
import json
import os

from training.rundir.summaries import duration

FILE = "wall_time.json"


class WallTime:
    """Seconds of this segment (from the loop's clock) and of the earlier ones, read from the run directory."""

    def __init__(self, model_dir, chief, resumed_step):
        self.path, self.chief, self.resumed = os.path.join(model_dir, FILE), chief, resumed_step > 0
        self.earlier = _read(self.path) if self.resumed else []
        self.seconds = 0.0

    def record(self, seconds):
        """Writes this segment's `seconds` so far beside the earlier ones (atomically; the chief only)."""
        self.seconds = round(seconds, 1)
        if self.chief:
            with open(self.path + ".tmp", "w") as f:
                json.dump({"segment_seconds": self.earlier + [self.seconds]}, f)
            os.replace(self.path + ".tmp", self.path)

    def describe(self):
        """'wall time H:MM:SS' of the last record, naming the segment and the whole run after a resume."""
        seconds = self.seconds
        if not self.resumed:
            return f"wall time {duration(seconds)}"
        if not self.earlier:  # a run directory from before wall_time.json
            return f"wall time {duration(seconds)} (this segment; the earlier ones were not recorded)"
        return (f"wall time {duration(seconds)} this segment, {duration(sum(self.earlier) + seconds)} the whole run "
                f"({len(self.earlier) + 1} segments)")


def _read(path):
    try:
        with open(path) as f:
            return [float(s) for s in json.load(f)["segment_seconds"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
