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
    """Copies the weights of config.init_checkpoint's run into `net`; says what was copied and what is new."""
    prefix, theirs = source(config.init_checkpoint)
    diff = [f"{k}={theirs.get(k)} (this run: {getattr(config, k)})" for k in MATCHING_FIELDS
            if theirs.get(k) != getattr(config, k)]
    if diff:
        raise TrainingError(f"--init_checkpoint={config.init_checkpoint} is another architecture: {', '.join(diff)}")
    donor, _ = network.create({**theirs, "image_size": config.image_size}, theirs["num_classes"])
    try:
        checkpoints.restore(prefix, model=donor)
    except Exception as e:  # noqa: BLE001 - damaged files, shape mismatches
        raise TrainingError(f"can't read --init_checkpoint {prefix}: {str(e).splitlines()[0]}") from None
    new_head = theirs["num_classes"] != config.num_classes
    copied = 0
    for layer in net.layers:
        if layer.weights and not (new_head and layer.name == network.HEAD):
            layer.set_weights(donor.get_layer(layer.name).get_weights())
            copied += len(layer.weights)
    head = (f"a new {config.num_classes}-class head (the checkpoint's has {theirs['num_classes']})" if new_head
            else "its head too (same classes)")
    frozen = "; backbone frozen" if config.freeze_backbone else ""
    out(f"warm-started {copied} variables from {prefix} (step {int(donor_step(prefix))}), {head}{frozen}")


def donor_step(prefix):
    return prefix.rsplit("-", 1)[-1]
