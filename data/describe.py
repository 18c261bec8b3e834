"""The console's lines about a run's splits: each one's size and source, and for folders the images per class."""
from typing import Optional

from data import folder, splits
from data.info import DatasetInfo

PER_CLASS_LINES = 20  # folders with more classes get their smallest ones listed, not every one


def describe_splits(info: DatasetInfo, data_dir: Optional[str] = None) -> list:
    """Console lines: each split's size and where it comes from; for folders, the images per class."""
    def origin(role):
        source, carve = splits.source(info, role)
        if carve is None:
            return f"{source}"
        low, high = carve.bounds(role)
        return f"{high - low:.0%} of {source} by hash"

    roles = ("train", "validation", "test") if info.has_validation else ("train", "test")
    sizes = {"train": info.num_train, "validation": info.num_validation, "test": info.num_eval}
    lines = [f"{info.name}: " + ", ".join(f"{role} {sizes[role]:,} ({origin(role)})" for role in roles)]
    if info.max_side:
        lines.append(f"pre-resized: training images at most {info.max_side} px (JPEG quality {info.resized_quality}, "
                     f"made from {info.resized_from}); " +
                     (f"the eval splits resized too, to at most {info.eval_max_side} px: accuracy is on resized images"
                      if info.eval_max_side else "the eval splits at full size"))
    if info.has_validation:
        lines.append("the evaluations during training, best/ and the choice of raw or EMA weights read the "
                     "validation split; the test split is evaluated once, at the end")
    else:
        lines.append("no validation split: the evaluations during training read the test split for monitoring "
                     "only; nothing is selected on them, best/ is not written, every tool uses the final checkpoint")
    if info.name.startswith("folder:"):
        counts = folder.counts_of(info, data_dir)
        rows = sorted(range(info.num_classes), key=lambda c: counts["train"][c])
        shown = rows if info.num_classes <= PER_CLASS_LINES else rows[:PER_CLASS_LINES // 2]
        for c in sorted(shown):
            lines.append(f"  {info.class_names[c]}: " + ", ".join(f"{role} {counts[role][c]}" for role in roles))
        if len(shown) < info.num_classes:
            lines.append(f"  ... the {len(shown)} classes with the fewest training images above; "
                         f"{info.num_classes - len(shown)} more")
    return lines
