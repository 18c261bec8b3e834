"""Fine-tuning: a new run starts from another run's weights, or from published ImageNet weights (--init_checkpoint).
Every layer is copied by name; the classifier ("logits") only when both have the same classes, otherwise it keeps
its fresh initialization. The optimizer state and the step are not copied: the new run starts at step 0 with its
own schedule, and normalizes its inputs the way the weights expect."""
import dataclasses
import os

from model import pretrained as published, weight_files
from training.compute import network
from training.config import ARCHITECTURE_FIELDS
from training.errors import TrainingError
from training.rundir import checkpoints, pretrained, run_dir

# What must agree for the weights to fit; the dataset, classes and input size may differ.
MATCHING_FIELDS = tuple(f for f in ARCHITECTURE_FIELDS if f not in ("dataset", "num_classes", "image_size"))
DONOR_IMAGE_SIZE = 224  # published weights are built at their own input size; conv shapes don't depend on it


def source(path):
    """(checkpoint prefix, its run's saved config) for a run directory (its best on validation, else latest) or a
    checkpoint prefix inside one (DIR/ckpt-N or DIR/best/ckpt-N)."""
    model_dir, prefix = _run_of(path)
    try:
        config = run_dir.read_config(model_dir)
        prefix = checkpoints.find(model_dir, prefix)
    except (ValueError, checkpoints.CheckpointError) as e:
        raise TrainingError(f"--init_checkpoint: {e}") from None
    if config is None:
        raise TrainingError(f"--init_checkpoint={path}: no {run_dir.CONFIG_FILE} in {model_dir or '.'} to tell its "
                            "architecture; give a checkpoint inside a train.py --model_dir")
    return prefix, config


def _run_of(path):
    """(run directory, checkpoint prefix or None) of a run directory or a checkpoint prefix inside one."""
    if os.path.isdir(path):
        return path, None
    model_dir = os.path.dirname(path)
    if os.path.basename(model_dir) == checkpoints.BEST_DIR:
        model_dir = os.path.dirname(model_dir)
    return model_dir, path


def warm_start(net, config, out=print):
    """Copies the weights of config.init_checkpoint (a run, or published weights) into `net` layer by layer,
    wherever the shapes agree; says what was copied and what stays newly initialized."""
    donor, theirs, where = _donor(config.init_checkpoint)
    # depth, unit, arch and width shape only the ResNets; the other models ignore them.
    fields = MATCHING_FIELDS if config.model == "resnet_v2" else ("model",)
    diff = [f"{k}={theirs.get(k)} (this run: {getattr(config, k)})" for k in fields if theirs.get(k) != getattr(config, k)]
    if diff:
        raise TrainingError(f"--init_checkpoint={config.init_checkpoint} is another architecture: {', '.join(diff)}")
    copied, new = 0, []
    for layer in net.layers:
        theirs_layer = _layer(donor, layer.name)
        ours_shapes = [tuple(w.shape) for w in layer.weights]
        if not layer.weights:
            continue
        if theirs_layer is None or ours_shapes != [tuple(w.shape) for w in theirs_layer.weights]:
            new.append(layer.name)  # the head for other classes; a stem or fc6 that the input size reshapes
            continue
        layer.set_weights(theirs_layer.get_weights())
        copied += len(layer.weights)
    parts = [f"warm-started {copied} variables from {where}"]
    if network.HEAD in new:
        had = f"has {theirs['num_classes']}" if theirs.get("include_top", True) else "has none"
        parts.append(f"a new {config.num_classes}-class head (the checkpoint's {had})")
    others = [name for name in new if name != network.HEAD]
    if others:
        parts.append(f"also new, their shapes differ at {config.image_size} px (the checkpoint's run: "
                     f"{theirs['image_size']} px): {', '.join(others)}")
    if config.freeze_backbone:
        parts.append("backbone frozen")
    out("; ".join(parts))


def normalization(config, info):
    """info with the normalization --init_checkpoint's weights were trained with (they expect their inputs
    scaled that way, not by this dataset's own mean / std); info itself without --init_checkpoint."""
    if not config.init_checkpoint:
        return info
    if weight_files.is_source(config.init_checkpoint):
        mean, std = published.NORMALIZATION
    else:
        try:
            theirs = run_dir.read_dataset_info(_run_of(config.init_checkpoint)[0])
        except ValueError as e:
            raise TrainingError(f"--init_checkpoint: {e}") from None
        if theirs is None:  # a run from before config.json recorded its dataset
            return info
        mean, std = theirs.mean, theirs.std
    return dataclasses.replace(info, mean=tuple(mean), std=tuple(std))


def _donor(path):
    """(model holding the weights of `path`, its run's config as a dict, a description of where they came from)."""
    if weight_files.is_source(path):
        try:
            donor, imported = published.load(path)
        except weight_files.WeightsError as e:
            raise TrainingError(f"--init_checkpoint: {e}") from None
        theirs = pretrained.imported_architecture(imported, DONOR_IMAGE_SIZE)
        return donor, theirs, f"{path} ({imported.family} ImageNet weights, ResNet V2 {imported.depth})"
    prefix, theirs = source(path)
    donor, _ = network.create(theirs, theirs["num_classes"])  # at its own input size: the checkpoint's shapes
    try:
        step, averaged = checkpoints.restore_weights(prefix, donor)
    except checkpoints.CheckpointError as e:
        raise TrainingError(f"--init_checkpoint: {e}") from None
    return donor, theirs, f"{prefix} (step {step}{', its weight EMA' if averaged else ''})"


def _layer(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None
