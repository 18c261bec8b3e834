"""The entry point of a pod of an indexed Kubernetes Job (deploy/kubernetes/indexed-job.yaml): TF_CONFIG from the
pod's JOB_COMPLETION_INDEX and the headless Service's DNS names, then train.py with the pod's arguments.

    python -m training.distribute.indexed_job train.py --strategy=multi_worker --model_dir=/runs/r50 ...

Kubernetes names the pod of index i of Job J `J-i` and, with `subdomain: S` in the pod spec and a headless Service
S, resolves `J-i.S` to it; so every pod derives the same worker list. The manifest sets TF_JOB_NAME (J),
TF_SERVICE (S), TF_WORKERS (the Job's completions) and TF_PORT."""
import json
import os
import sys

NEEDED = ("JOB_COMPLETION_INDEX", "TF_JOB_NAME", "TF_SERVICE", "TF_WORKERS", "TF_PORT")


def tf_config(index, workers, job_name, service, port):
    """The TF_CONFIG text of worker `index` of `workers`: worker 0 is the chief."""
    if not 0 <= index < workers:
        raise ValueError(f"JOB_COMPLETION_INDEX={index} is outside the Job's {workers} completions (TF_WORKERS); "
                         "set TF_WORKERS to the Job's completions and parallelism")
    cluster = [f"{job_name}-{i}.{service}:{port}" for i in range(workers)]
    return json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})


def from_environment(environ=os.environ):
    absent = [n for n in NEEDED if not environ.get(n)]
    if absent:
        raise ValueError(f"{', '.join(absent)} not set; run this in a pod of an indexed Job (completionMode: "
                         "Indexed) whose manifest sets them, as deploy/kubernetes/indexed-job.yaml does")
    try:
        numbers = {n: int(environ[n]) for n in ("JOB_COMPLETION_INDEX", "TF_WORKERS", "TF_PORT")}
    except ValueError as e:
        raise ValueError(f"JOB_COMPLETION_INDEX, TF_WORKERS and TF_PORT must be numbers ({e})") from None
    return tf_config(numbers["JOB_COMPLETION_INDEX"], numbers["TF_WORKERS"], environ["TF_JOB_NAME"],
                     environ["TF_SERVICE"], numbers["TF_PORT"])


def main(argv):
    if not argv or not argv[0].endswith(".py"):
        sys.exit("error: usage: python -m training.distribute.indexed_job train.py --flag=value ...")
    try:
        config = from_environment()
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(f"TF_CONFIG from the indexed Job: {config}", flush=True)
    # exec: train.py becomes this process (the container's PID 1), so Kubernetes' SIGTERM reaches it directly.
    os.execve(sys.executable, [sys.executable, *argv], {**os.environ, "TF_CONFIG": config})


if __name__ == "__main__":
    main(sys.argv[1:])
