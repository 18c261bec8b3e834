"""Which tf.distribute strategy runs the steps: one device, many GPUs, many machines, or a TPU."""
import os

import tensorflow as tf

from training.distribute import cluster, slurm

KINDS = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


class StrategyError(ValueError):
    """A device or cluster setup that can't work, with what to do about it."""


def split_cpu(num_devices):
    """Splits the CPU into logical devices, so MirroredStrategy can be tried without GPUs. Call before any op."""
    if num_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
        except RuntimeError:
            pass  # already initialized (e.g. split by the tests); the existing devices are used


def create(kind="auto", num_gpus=None, join_timeout=600.0, out=print):
    """The strategy for `kind`; num_gpus limits the GPUs used (None: all visible, 0: CPU only); multi_worker
    waits up to join_timeout seconds for every worker of TF_CONFIG."""
    if kind not in KINDS:
        raise StrategyError(f"--strategy must be one of {', '.join(KINDS)}, not {kind!r}")
    found = task(kind)
    if found is not None:
        return _multi_worker(found, join_timeout, out)
    if kind == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if num_gpus is not None:
        if num_gpus > len(gpus):
            raise StrategyError(f"--num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible")
        gpus = gpus[:num_gpus]
    if kind == "auto":
        kind = "mirrored" if len(gpus) >= 2 else "one_device"
    if kind == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0] if gpus else "/cpu:0")
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def task(kind="multi_worker", environ=os.environ):
    """This process's cluster.Task when `kind` trains on many workers, else None: from TF_CONFIG if it is set,
    else from a Slurm step of 2+ tasks (also under --strategy=auto). Raises StrategyError if the description is
    wrong."""
    try:
        if kind == "multi_worker" and environ.get("TF_CONFIG"):
            return cluster.read_task(environ)
        if kind in ("auto", "multi_worker") and slurm.in_step(environ):
            return slurm.read_task(environ)[0]
        if kind == "multi_worker":
            slurm.check_launch(environ)
            return cluster.read_task(environ)
        return None
    except cluster.ClusterError as e:
        raise StrategyError(str(e)) from None


def _multi_worker(task, join_timeout, out):
    try:
        resolver = None
        if task.source == "Slurm":
            resolver = slurm.read_task()[1]
            gpus = tf.config.list_physical_devices("GPU")
            positions, how = slurm.bind_gpus(len(gpus))
            if positions is not None:
                tf.config.set_visible_devices([gpus[i] for i in positions], "GPU")
            out(slurm.describe(task, how))
        else:
            out(f"cluster from TF_CONFIG: {task.kind} {task.index} of {len(task.addresses)} at "
                f"{task.addresses[task.me]}")
        cluster.wait_for_workers(task, join_timeout, out)
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except cluster.ClusterError as e:
        raise StrategyError(str(e)) from None
    except tf.errors.UnknownError as e:  # "Could not start gRPC server": the port was taken since we checked it
        raise StrategyError(f"TensorFlow could not join the cluster ({str(e).splitlines()[0]}); check that this "
                            "task's TF_CONFIG port is free and run the same command again") from None


def check_batch_size(strategy, batch_size):
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        workers = getattr(strategy.extended, "_num_workers", 1)
        where = f" ({workers} workers, e.g. Slurm tasks, of {replicas // workers} device(s))" if workers > 1 else ""
        raise StrategyError(f"--batch_size={batch_size} is not divisible by the {replicas} replicas{where}; "
                            f"use a multiple of {replicas}")


def is_chief(strategy):
    """True on the one worker that writes checkpoints, summaries and config (always true off multi-worker)."""
    return strategy.extended.should_checkpoint


def worker_id(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return getattr(resolver, "task_id", 0) or 0


def describe(strategy):
    devices = getattr(strategy.extended, "worker_devices", ())
    # MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy; name it as users know it.
    name = ("MultiWorkerMirroredStrategy" if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            else type(strategy).__name__)
    return f"{name} with {strategy.num_replicas_in_sync} replica(s): {', '.join(devices)}"


def from_chief(strategy):
    """broadcast(value) -> the chief's value of an int, on every worker of a multi-worker run (a collective every
    worker must call); None off multi-worker, where this process is the chief."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None

    def broadcast(value):
        @tf.function
        def chiefs():
            # Global replica 0 is the chief's first: only its value enters the sum.
            def mine():
                first = tf.distribute.get_replica_context().replica_id_in_sync_group == 0
                return tf.where(first, tf.constant(value, tf.int64), tf.constant(0, tf.int64))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(mine), axis=None)
        return int(chiefs())
    return broadcast
