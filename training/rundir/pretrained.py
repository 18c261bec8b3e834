"""pretrained.py's library side: published ImageNet weights (model/pretrained.py reads them) become a run
directory like train.py's, so that eval.py, predict.py, export.py and train.py --init_checkpoint take it as it is:
config.json (the network, the 1000 ImageNet classes, the preprocessing the weights expect, the source and its
checksums) and one checkpoint, ckpt-0. The directory appears whole or not at all."""
import os
import shutil
import tempfile

import tensorflow as tf

from data import imagenet
from model import pretrained
from training.config import Config
from training.errors import TrainingError
from training.rundir import run_dir

PREPROCESSING = {
    "input": "RGB scaled to [-1, 1]: (pixel - 127.5) / 127.5 (Inception's preprocessing, Keras' mode='tf')",
    "eval": "shorter side resized to image_size / 0.875, central image_size crop",
}


def import_run(source, model_dir, recipe, depth=None, image_size=224, out=print):
    """Writes the run directory model_dir from `source` (see model.pretrained.load), recording `recipe` (see
    imported_config); returns its config.
    Raises TrainingError, or pretrained.WeightsError, before anything is written."""
    if os.path.exists(model_dir) and (not os.path.isdir(model_dir) or os.listdir(model_dir)):
        raise TrainingError(f"--model_dir={model_dir} already exists and is not empty; give a new directory")
    net, imported = pretrained.load(source, depth, image_size)
    config = imported_config(source, model_dir, imported, image_size, recipe)
    info = imagenet.info(image_size, *pretrained.NORMALIZATION)
    parent = os.path.dirname(os.path.abspath(model_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(model_dir))}.importing-", dir=parent)
    try:
        checkpoint = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), epoch=tf.Variable(0, dtype=tf.int64),
                                         model=net)
        # The state file lists the checkpoint by a relative path, so the directory can be renamed below.
        tf.train.CheckpointManager(checkpoint, staging, max_to_keep=1, checkpoint_name="ckpt").save(0)
        run_dir.write_config(config, info, "imported by pretrained.py, no training", directory=staging,
                             pretrained={**imported.record(), "source": source, "preprocessing": PREPROCESSING})
        if os.path.isdir(model_dir):
            os.rmdir(model_dir)  # empty (checked above); rename() can't replace it atomically on every system
        os.rename(staging, model_dir)
    except (OSError, tf.errors.OpError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise TrainingError(f"can't write --model_dir={model_dir}: {getattr(e, 'strerror', None) or e}") from None
    top = f"a {imported.file_classes}-class classifier" if imported.include_top else "no classifier (_notop)"
    out(f"imported {imported.family} ResNet V2 {imported.depth} ({len(net.weights)} variables, {top}) from "
        f"{imported.path} into {model_dir}")
    return config


def imported_architecture(imported, image_size):
    """The architecture fields of a run holding `imported` weights, as warm starts compare them."""
    return {"model": "resnet_v2", "dataset": imagenet.NAME, "depth": imported.depth, "unit": "auto", "arch": "auto",
            "width": 1.0, "image_size": image_size, "num_classes": len(imagenet.classes()),
            "include_top": imported.include_top}


def imported_config(source, model_dir, imported, image_size, recipe):
    """The Config of a run holding imported ImageNet weights, never trained (step 0); `recipe` is the ImageNet
    recipe it records (flags/recipes.py published_imagenet)."""
    return Config(
        **imported_architecture(imported, image_size), data_dir=None, strict=False, model_dir=model_dir,
        sync_bn=False, bn_momentum=0.997, batch_size=recipe["batch_size"], train_steps=0,
        steps_per_epoch=imagenet.NUM_TRAIN // recipe["batch_size"], learning_rate=recipe["learning_rate"],
        lr_batch_denominator=recipe["lr_batch_denominator"], lr_schedule="piecewise",
        lr_decay_epochs=recipe["lr_decay_epochs"], warmup_epochs=recipe["warmup_epochs"],
        momentum=recipe["momentum"], nesterov=False, weight_decay=recipe["weight_decay"], label_smoothing=0.0,
        epochs_between_evals=1.0, steps_per_loop=1, log_every_steps=100, keep_checkpoints=1, keep_best=0,
        nan_policy="stop", debug_nan_at_step=None, seed=0, deterministic=False, dtype="float32", xla=False,
        strategy="auto", num_gpus=None, cpu_devices=1, imported_from=source)
