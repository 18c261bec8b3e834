"""Sums tf.profiler traces by TensorFlow op type, side by side (what benchmark.py --profile_dir or train.py
--profile_steps wrote):

    python -m training.benchmark.op_profile runs/fp32_profile runs/bf16_profile

Each op's cost is its fastest occurrence in the trace: on shared cores other processes preempt ops at random, and
an op runs once per step, so the minimum over steps is its own cost. The sums add the time of ops that ran
concurrently on the two inter-op threads, so they are op-seconds per step, not the step's wall time.
"""
import collections
import glob
import os
import sys

CONVOLUTION = "Conv2D"  # in every convolution op's type: Conv2D, _MklNativeFusedConv2D, ...BackpropFilter...


def op_times(logdir):
    """{op type: (seconds per step, ops per step)} from the newest trace under logdir."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
    if not paths:
        raise ValueError(f"no tf.profiler trace (*.xplane.pb) under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    fastest = collections.defaultdict(dict)  # op type -> {op name: seconds}
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_"):  # the executor's threads; not python or the thread pools
                continue
            for event in line.events:
                op_name, _, op_type = plane.event_metadata[event.metadata_id].name.rpartition(":")
                if op_name and op_type != "Process":  # "Process" spans a whole function call
                    seconds = event.duration_ps / 1e12
                    fastest[op_type][op_name] = min(seconds, fastest[op_type].get(op_name, seconds))
    return {t: (sum(ops.values()), len(ops)) for t, ops in fastest.items()}


def table(logdirs, top=20):
    """The lines of a side-by-side table of op types, then convolutions / everything else / total."""
    runs = [op_times(d) for d in logdirs]
    totals = [sum(s for s, _ in r.values()) for r in runs]
    types = sorted(set().union(*runs), key=lambda t: -max(r.get(t, (0, 0))[0] for r in runs))
    cell = lambda seconds, total, count="": f"{seconds:7.3f} s {100 * seconds / total:5.1f} %{count:>9}"  # noqa: E731
    lines = [f"{'op type (op-seconds per step)':40s}" + "".join(f"{os.path.basename(d.rstrip('/')):>27s}"
                                                                 for d in logdirs)]
    for t in types[:top]:
        lines.append(f"{t:40s}" + "".join(cell(r.get(t, (0, 0))[0], total, f"{r.get(t, (0, 0))[1]}/step")
                                          for r, total in zip(runs, totals)))
    conv = [sum(s for t, (s, _) in r.items() if CONVOLUTION in t) for r in runs]
    lines.append(f"{'convolutions':40s}" + "".join(cell(c, total, "") for c, total in zip(conv, totals)))
    lines.append(f"{'everything else':40s}" + "".join(cell(total - c, total, "") for c, total in zip(conv, totals)))
    lines.append(f"{'total':40s}" + "".join(cell(total, total, "") for total in totals))
    return lines


def main(argv):
    if len(argv) < 2:
        sys.exit("error: give one or more trace directories: python -m training.benchmark.op_profile DIR [DIR ...]")
    try:
        print("\n".join(table(argv[1:])))
    except ValueError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main(sys.argv)
