"""The cluster of a Slurm job step (srun, or srun inside sbatch) through TensorFlow's SlurmClusterResolver, checked
against what Slurm says about this task, with each task's GPUs as Slurm bound them.

The resolver numbers tasks host by host (sorted names, ports port_base + local rank) and never looks at where
Slurm actually started each rank, so a cyclic task distribution would give a task another node's address; that,
and variables that contradict each other, are refused here in one line."""
import os

from training.distribute import cluster

# Each job gets its own ports, so that two jobs sharing a node don't collide: 20000 + 16 * (job id mod 750),
# room for 16 tasks per node, all below the ephemeral range (32768+) that the kernel hands out.
PORT_BASE, PORTS_PER_JOB, JOB_SLOTS = 20000, 16, 750


def in_step(environ=os.environ):
    """True inside a Slurm step of more than one task (srun), the case --strategy=auto trains on many workers."""
    return _int(environ, "SLURM_STEP_NUM_TASKS", 1) > 1


def port_base(environ=os.environ):
    return PORT_BASE + PORTS_PER_JOB * (_int(environ, "SLURM_JOB_ID", 0) % JOB_SLOTS)


def check_launch(environ=os.environ):
    """Raises ClusterError if this is the batch script of a many-task job run without srun: only one task would
    start and it would wait for the others until --worker_join_timeout."""
    if "SLURM_JOB_ID" in environ and "SLURM_STEP_NUM_TASKS" not in environ and _int(environ, "SLURM_NTASKS", 1) > 1:
        raise cluster.ClusterError(f"this Slurm job has {environ['SLURM_NTASKS']} tasks but train.py was started "
                                   "once, outside srun; start it with `srun python train.py ...` so that every "
                                   "task runs (scripts/slurm/train.sbatch does)")


def read_task(environ=os.environ):
    """(cluster.Task, resolver): this task in the step's cluster, and the resolver MultiWorkerMirroredStrategy
    takes (which reads SLURM_PROCID from os.environ itself). Raises ClusterError if Slurm's variables contradict
    each other."""
    from tensorflow.python.distribute.cluster_resolver import slurm_cluster_resolver as scr

    names = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE",
             "SLURM_LOCALID", "SLURMD_NODENAME")
    absent = [n for n in names if n not in environ]
    if absent:
        raise cluster.ClusterError(f"Slurm's variables are incomplete ({', '.join(absent)} not set); start "
                                   "train.py with srun")
    rank, tasks, local = _int(environ, "SLURM_PROCID"), _int(environ, "SLURM_STEP_NUM_TASKS"), \
        _int(environ, "SLURM_LOCALID")
    try:
        hosts = scr.expand_hostlist(environ["SLURM_STEP_NODELIST"])
        per_node = scr.expand_tasks_per_node(environ["SLURM_STEP_TASKS_PER_NODE"])
    except ValueError as e:
        raise cluster.ClusterError(f"Slurm's variables are not valid ({e})") from None
    if len(hosts) != len(per_node) or sum(per_node) != tasks or not 0 <= rank < tasks:
        raise cluster.ClusterError(
            f"Slurm's variables are inconsistent: SLURM_STEP_NODELIST has {len(hosts)} node(s), "
            f"SLURM_STEP_TASKS_PER_NODE={environ['SLURM_STEP_TASKS_PER_NODE']} sums to {sum(per_node)} task(s), "
            f"SLURM_STEP_NUM_TASKS={tasks}, SLURM_PROCID={rank}; start train.py with srun, not with these "
            "variables set by hand")
    # One nominal GPU per task: the resolver lists only as many tasks per node as it can give GPUs to, even with
    # auto_set_gpu off (which leaves CUDA_VISIBLE_DEVICES alone; bind_gpus decides the GPUs).
    resolver = scr.SlurmClusterResolver(jobs={"worker": tasks}, port_base=port_base(environ),
                                        gpus_per_node=max(per_node), gpus_per_task=1, auto_set_gpu=False,
                                        tasks_per_node=dict(zip(hosts, per_node)))
    addresses = tuple(resolver.cluster_spec().as_dict()["worker"])
    expected = f"{environ['SLURMD_NODENAME']}:{port_base(environ) + local}"
    if addresses[rank] != expected:
        raise cluster.ClusterError(
            f"Slurm started task {rank} as local task {local} on {environ['SLURMD_NODENAME']}, but TensorFlow's "
            f"SlurmClusterResolver places it at {addresses[rank]} (it numbers tasks node by node); submit with "
            "--distribution=block (Slurm's default) and node names that sort in Slurm's order")
    return cluster.Task("worker", rank, addresses, rank, False, source="Slurm"), resolver


def bind_gpus(num_visible, environ=os.environ):
    """(positions, how): which of the `num_visible` GPUs this task uses (None: all of them), and how they were
    chosen, for the start-up line.

    Slurm binds GPUs to tasks with --gpus-per-task or --gpu-bind (each task then sees only its own), or gives
    every task of a node all of the node's GPUs (--gpus-per-node or --gres alone). In the second case the tasks
    of a node share them out by local rank, as SlurmClusterResolver's auto_set_gpu does, so that no two tasks
    train on one GPU."""
    on_node = _tasks_on_node(environ)
    if not num_visible:
        return None, "no GPU"
    if "SLURM_GPUS_PER_TASK" in environ or "SLURM_GPU_BIND" in environ or on_node == 1:
        return None, f"its {num_visible} GPU(s) as Slurm bound them"
    share = num_visible // on_node
    if share == 0:
        raise cluster.ClusterError(f"{on_node} tasks on this node share {num_visible} GPU(s); run at most one "
                                   "task per GPU (--ntasks-per-node no more than --gpus-per-node)")
    local = _int(environ, "SLURM_LOCALID")
    positions = list(range(local * share, (local + 1) * share))
    return positions, (f"GPU(s) {','.join(map(str, positions))} of the node's {num_visible}, shared out among "
                       f"its {on_node} tasks by local rank (Slurm bound none per task)")


def _tasks_on_node(environ):
    """The number of this step's tasks on this task's node."""
    from tensorflow.python.distribute.cluster_resolver import slurm_cluster_resolver as scr
    hosts = scr.expand_hostlist(environ.get("SLURM_STEP_NODELIST", "") or "x")
    per_node = scr.expand_tasks_per_node(environ.get("SLURM_STEP_TASKS_PER_NODE", "") or "1")
    return dict(zip(hosts, per_node)).get(environ.get("SLURMD_NODENAME"), 1)


def describe(task, gpus, environ=os.environ):
    """The start-up line of a task: the source of the cluster, its rank, address and GPUs."""
    return (f"cluster from Slurm (job {environ.get('SLURM_JOB_ID')}, step {environ.get('SLURM_STEP_ID')}): task "
            f"{task.index} of {len(task.addresses)} at {task.addresses[task.me]} on node "
            f"{environ.get('SLURMD_NODENAME')}, {gpus}")


def _int(environ, name, default=None):
    value = environ.get(name)
    if value is None and default is not None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise cluster.ClusterError(f"Slurm's variable {name}={value!r} is not a number; start train.py with "
                                   "srun") from None
