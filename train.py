"""Trains a ResNet V2; re-running the same command resumes the run from its latest checkpoint.

    python train.py --dataset=cifar10 --depth=50
    python train.py --dataset=imagenet2012 --depth=50 --data_dir=/data/tfds --num_gpus=8
"""
from console import cuda_noise

cuda_noise.start()  # TensorFlow's CUDA probing lines, dropped where there is no GPU
import os  # noqa: E402
import sys  # noqa: E402

from training.loop import preemption  # noqa: E402

preemption.exit_on_signal("nothing new to save; run the same command to resume")  # until training takes over
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags as absl_flags  # noqa: E402
from absl.flags import FLAGS  # noqa: E402

import flags  # noqa: E402
from console import logs  # noqa: E402

flags.define_data_flags()
flags.define_model_flags()
flags.define_training_flags()
absl_flags.adopt_module_key_flags(flags)  # --help lists them: they are defined in flags/


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}; flags look like --depth=50")
    import data
    from training.distribute import strategy
    from training.loop import run as loop
    logs.quiet()
    strategy.split_cpu(FLAGS.cpu_devices)  # before any TensorFlow op touches the devices
    from training.distribute import failures
    from training.rundir import checkpoints
    try:
        config, info = flags.make_config(FLAGS)
        loop.run(config, info, length_rule=flags.length_rule(FLAGS, info) if config.time_budget else None,
                 finished=exit_now)
    except loop.Stopped as e:
        print(e, flush=True)
        sys.stderr.flush()
        # Everything the run writes is on disk (checkpoint, events, metrics.csv; the kernel drops the lock), so
        # skip the interpreter's teardown: freeing tf.data's datasets took 1.8 s of a 2.3 s exit (py-spy), and a
        # container's grace period after SIGTERM is 10 s.
        os._exit(e.status)
    except failures.PeerLost as e:
        logs.fail(e, e.status)
    except (flags.ConfigError, data.DataError, loop.TrainingError, strategy.StrategyError,
            checkpoints.CheckpointError) as e:
        logs.fail(e)


def exit_now(results):
    """A finished run's end: everything it writes is on disk (checkpoints, metrics, TensorBoard's events are
    flushed as written), so the process skips TensorFlow's teardown, where the tf.data iterators' destructors
    waited 40-44 s after the final line (a ResNet-20 on one core, py-spy: RootDataset::Iterator's thread pool)."""
    del results
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    logs.run(main)
