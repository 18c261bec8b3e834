"""A real one-node Slurm on localhost for the tests: munged, slurmctld and slurmd (Debian's slurm-wlm and munge,
installed by .ci/run), each in its own directory with its own ports, started for a test module and stopped after.

Nothing here touches /etc: the key, the sockets, the state and the logs live in one temporary directory, and the
clients find the cluster through SLURM_CONF."""
import os
import shutil
import signal
import subprocess
import time

from support import free_port

NODE = "localhost"  # the node's name resolves on any machine, so the tasks' addresses do too
TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scancel", "scontrol", "squeue")

CONF = """\
ClusterName=resnet-tests
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits for its previous credential to expire (Slurm's default: 120 s) before it may
# start again; sched_interval: how often the scheduler looks at the queue (default 60 s). Short, for the tests.
AuthInfo=socket={dir}/munge.socket,cred_expire=10
SchedulerParameters=sched_interval=2
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
# No cgroups in a container: plain process tracking and no task affinity.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# Seconds between a step's SIGTERM and its SIGKILL (scancel, the time limit): a checkpoint's time and more.
KillWait=60
MinJobAge=300
NodeName={node} NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=tests Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def missing():
    """Why Slurm can't run here (one line), or None."""
    absent = [t for t in TOOLS if not shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin")]
    if absent:
        return (f"Slurm is not installed ({', '.join(absent)} missing): .ci/run installs Debian's slurm-wlm and "
                "munge as root")
    if os.geteuid() != 0:
        return "the test Slurm runs slurmd, which must be root (CI runs the tests as root)"
    return None


class Cluster:
    """The running daemons; `env` is the environment a client (sbatch, srun, scancel) needs."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.daemons = []
        self.env = {**os.environ, "SLURM_CONF": f"{self.dir}/slurm.conf",
                    "PATH": os.environ.get("PATH", "") + ":/usr/sbin"}

    def start(self):
        for sub in ("state", "spool"):
            os.makedirs(f"{self.dir}/{sub}", exist_ok=True)
        key = f"{self.dir}/munge.key"
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        os.chmod(self.dir, 0o700)
        with open(f"{self.dir}/slurm.conf", "w") as f:
            f.write(CONF.format(node=NODE, dir=self.dir, user="root", ctld_port=free_port(),
                                slurmd_port=free_port()))
        self._daemon("munged", "--foreground", "--force", f"--key-file={key}", f"--socket={self.dir}/munge.socket",
                     f"--pid-file={self.dir}/munged.pid", f"--log-file={self.dir}/munged.log",
                     f"--seed-file={self.dir}/munge.seed")
        self._wait(lambda: os.path.exists(f"{self.dir}/munge.socket"), "munged")
        self._daemon("slurmctld", "-D", "-i", "-f", f"{self.dir}/slurm.conf")
        self._wait(lambda: self.run("scontrol", "ping", check=False).stdout.count("UP") > 0, "slurmctld")
        self._daemon("slurmd", "-D", "-N", NODE, "-f", f"{self.dir}/slurm.conf")
        self._wait(lambda: self.node_state().startswith("IDLE"), "slurmd")
        return self

    def _daemon(self, name, *args):
        log = open(f"{self.dir}/{name}.out", "w")
        self.daemons.append(subprocess.Popen([shutil.which(name, path="/usr/sbin:/usr/bin"), *args], env=self.env,
                                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def _wait(self, ready, name, timeout=60):
        deadline = time.monotonic() + timeout
        while not ready():
            if self.daemons[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {self.logs()}")
            time.sleep(0.3)

    def logs(self):
        text = []
        for name in ("munged.out", "slurmctld.log", "slurmctld.out", "slurmd.log", "slurmd.out"):
            path = f"{self.dir}/{name}"
            if os.path.exists(path):
                text.append(f"--- {name}\n" + open(path).read()[-3000:])
        return "\n".join(text)

    def run(self, *command, check=True, timeout=60):
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode:
            raise AssertionError(f"{' '.join(command)}: {result.stdout}{result.stderr}")
        return result

    def node_state(self):
        return self.run("scontrol", "show", "node", NODE, check=False).stdout.partition("State=")[2]

    def job(self, job_id):
        """{field: value} of `scontrol show job` (empty once the job is forgotten)."""
        text = self.run("scontrol", "-o", "show", "job", str(job_id), check=False).stdout
        return dict(f.split("=", 1) for f in text.split() if "=" in f)

    def stop(self):
        self.run("scancel", "--user=root", check=False)  # jobs first, so that no task outlives its slurmd
        for daemon in reversed(self.daemons):
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
