"""Fine-tuning: a new run starts from another run's weights (--init_checkpoint). Every layer is copied by name;
the classifier ("logits") only when both runs have the same classes, otherwise it keeps its fresh initialization.
The optimizer state and the step are not copied: the new run starts at step 0 with its own schedule."""
import os

from training import checkpoints, network, run_dir
from training.config import ARCHITECTURE_FIELDS
from training.run_dir import TrainingError

# What must agree for the weights to fit; the dataset, classes and input size may differ.
MATCHING_FIELDS = tuple(f for f in ARCHITECTURE_FIELDS if f not in ("dataset", "num_classes", "image_size"))


def source(path):
    """(checkpoint prefix, its run's saved config) for a run directory (its best, else latest checkpoint) or a
    checkpoint prefix inside one (DIR/ckpt-N or DIR/best/ckpt-N)."""
    if os.path.isdir(path):
        model_dir, prefix = path, None
    else:
        model_dir, prefix = os.path.dirname(path), path
        if os.path.basename(model_dir) == checkpoints.BEST_DIR:
            model_dir = os.path.dirname(model_dir)
    try:
        config = run_dir.read_config(model_dir)
        prefix = checkpoints.find(model_dir, prefix, prefer_best=True)
    except (ValueError, checkpoints.CheckpointError) as e:
        raise TrainingError(f"--init_checkpoint: {e}") from None
    if config is None:
        raise TrainingError(f"--init_checkpoint={path}: no {run_dir.CONFIG_FILE} in {model_dir or '.'} to tell its "
                            "architecture; give a checkpoint inside a train.py --model_dir")
    return prefix, config


def warm_start(net, config, out=print):
    """Copies the weights of config.init_checkpoint's run into `net` layer by layer, wherever the shapes agree;
    says what was copied and what stays newly initialized."""
    prefix, theirs = source(config.init_checkpoint)
    # depth, unit, arch and width shape only the ResNets; the other models ignore them.
    fields = MATCHING_FIELDS if config.model == "resnet_v2" else ("model",)
    diff = [f"{k}={theirs.get(k)} (this run: {getattr(config, k)})" for k in fields if theirs.get(k) != getattr(config, k)]
    if diff:
        raise TrainingError(f"--init_checkpoint={config.init_checkpoint} is another architecture: {', '.join(diff)}")
    donor, _ = network.create(theirs, theirs["num_classes"])  # at its own input size: the checkpoint's shapes
    try:
        step = checkpoints.restore(prefix, model=donor)
    except checkpoints.CheckpointError as e:
        raise TrainingError(f"--init_checkpoint: {e}") from None
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
    parts = [f"warm-started {copied} variables from {prefix} (step {step})"]
    if network.HEAD in new:
        parts.append(f"a new {config.num_classes}-class head (the checkpoint's has {theirs['num_classes']})")
    others = [name for name in new if name != network.HEAD]
    if others:
        parts.append(f"also new, their shapes differ at {config.image_size} px (the checkpoint's run: "
                     f"{theirs['image_size']} px): {', '.join(others)}")
    if config.freeze_backbone:
        parts.append("backbone frozen")
    out("; ".join(parts))


def _layer(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None
