"""deploy/kubernetes/: every manifest parses, passes Kubernetes' own schemas (kubernetes-validate, offline), and
runs only real flags and files of the image; the indexed Job's names agree with its Service and its entry point's
environment; and that entry point's TF_CONFIG for 1, 2 and 4 workers."""
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from support import ROOT
from training.distribute import indexed_job

DEPLOY = os.path.join(ROOT, "deploy", "kubernetes")
K8S_VERSION = "1.30.0"  # the oldest Kubernetes release still maintained upstream when this was written


def manifests():
    """{file name: [documents]} for every manifest."""
    return {name: [d for d in yaml.safe_load_all(open(os.path.join(DEPLOY, name))) if d]
            for name in sorted(os.listdir(DEPLOY)) if name.endswith(".yaml")}


def pod_specs():
    """(manifest, pod spec) of every pod template: the Job's, and each TFJob replica's."""
    for name, documents in manifests().items():
        for d in documents:
            if d["kind"] == "Job":
                yield name, d["spec"]["template"]["spec"]
            elif d["kind"] == "TFJob":
                for replica in d["spec"]["tfReplicaSpecs"].values():
                    yield name, replica["template"]["spec"]


def test_there_are_a_tfjob_and_an_indexed_job_with_its_headless_service():
    kinds = {name: [d["kind"] for d in documents] for name, documents in manifests().items()}
    assert kinds == {"indexed-job.yaml": ["Service", "Job"], "tfjob.yaml": ["TFJob"]}


def test_manifests_pass_the_kubernetes_schemas(tmp_path):
    # The TFJob is a custom resource that Kubernetes' schemas don't know: its pod templates are checked as
    # PodTemplates, which is what the Training Operator creates its pods from.
    documents = []
    for name, docs in manifests().items():
        for d in docs:
            if d["kind"] == "TFJob":
                documents += [{"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"tfjob-{kind.lower()}"},
                               "template": replica["template"]} for kind, replica in d["spec"]["tfReplicaSpecs"].items()]
            else:
                documents.append(d)
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    validator = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    if not os.path.exists(validator):
        pytest.skip("kubernetes-validate is not installed (requirements-dev.txt pins it)")
    result = subprocess.run([validator, "--strict", f"--kubernetes-version={K8S_VERSION}", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "INFO" in result.stdout, result.stdout + result.stderr
    assert result.stdout.count("INFO") == len(documents), result.stdout


def train_flags():
    result = subprocess.run([sys.executable, "train.py", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(re.findall(r"^\s+--(?:\[no\])?(\w+)", result.stdout, re.MULTILINE))


def test_every_container_runs_real_flags_and_files_of_the_image_as_a_user_with_a_gpu_and_the_run_volume():
    known, copied = train_flags(), open(os.path.join(ROOT, "Dockerfile")).read()
    specs = list(pod_specs())
    assert len(specs) == 2
    for name, spec in specs:
        (container,) = spec["containers"]
        assert container["image"].split(":")[0] == "resnet-v2", name
        command = container.get("command", ["python", "train.py"])  # the Dockerfile's ENTRYPOINT
        if command[:3] == ["python", "-m", "training.distribute.indexed_job"]:
            command = ["python"] + command[3:]
            assert "COPY training/ training/" in copied
        assert command == ["python", "train.py"], (name, command)
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        volumes = {v["name"] for v in spec["volumes"]}
        assert {m["name"] for m in mounts.values()} <= volumes and "/runs" in mounts and not mounts["/runs"].get(
            "readOnly")
        for arg in container["args"]:
            flag = arg[2:].split("=")[0]
            assert arg.startswith("--") and (flag in known or flag.startswith("no") and flag[2:] in known), arg
            value = arg.partition("=")[2]
            if value.startswith("/"):
                assert any(value == m or value.startswith(m + "/") for m in mounts), (name, arg)
        assert "--strategy=multi_worker" in container["args"] and any(a.startswith("--model_dir=/runs/")
                                                                       for a in container["args"])
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0 and security["fsGroup"] > 0
        # The grace period after SIGTERM covers the step in flight and the checkpoint: ResNet-50's step and
        # checkpoint on a GPU take seconds (docs/reliability.md 'Preemption'); Kubernetes' default is 30 s.
        assert spec["terminationGracePeriodSeconds"] >= 60, name


def test_the_indexed_jobs_names_agree_with_its_service_and_entry_point():
    service, job = manifests()["indexed-job.yaml"]
    template = job["spec"]["template"]
    (container,) = template["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["selector"].items() <= \
        template["metadata"]["labels"].items()
    assert job["spec"]["completionMode"] == "Indexed"
    assert int(env["TF_WORKERS"]) == job["spec"]["completions"] == job["spec"]["parallelism"]
    assert env["TF_JOB_NAME"] == job["metadata"]["name"]
    assert env["TF_SERVICE"] == service["metadata"]["name"] == template["spec"]["subdomain"]
    assert int(env["TF_PORT"]) == service["spec"]["ports"][0]["port"] == container["ports"][0]["containerPort"]
    assert set(indexed_job.NEEDED) == set(env) | {"JOB_COMPLETION_INDEX"}  # Kubernetes sets the index


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_indexed_job_tf_config(workers):
    names = [f"train-{i}.workers:12345" for i in range(workers)]
    for index in range(workers):
        environ = {"JOB_COMPLETION_INDEX": str(index), "TF_JOB_NAME": "train", "TF_SERVICE": "workers",
                   "TF_WORKERS": str(workers), "TF_PORT": "12345"}
        config = json.loads(indexed_job.from_environment(environ))
        assert config == {"cluster": {"worker": names}, "task": {"type": "worker", "index": index}}
        from training.distribute import cluster
        task = cluster.read_task({"TF_CONFIG": json.dumps(config)})  # what train.py then reads
        assert task.addresses[task.me] == names[index] and task.is_chief == (index == 0)
    with pytest.raises(ValueError, match=f"JOB_COMPLETION_INDEX={workers} is outside the Job's {workers}"):
        indexed_job.from_environment({**environ, "JOB_COMPLETION_INDEX": str(workers)})


def test_the_entry_point_runs_train_py_with_tf_config_or_says_what_is_missing():
    env = {**os.environ, "JOB_COMPLETION_INDEX": "1", "TF_JOB_NAME": "train", "TF_SERVICE": "workers",
           "TF_WORKERS": "2", "TF_PORT": "12345"}
    env.pop("TF_CONFIG", None)
    script = "import json, os; print(json.loads(os.environ['TF_CONFIG'])['task'])"
    probe = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"print_tf_config_{os.getpid()}.py")
    with open(probe, "w") as f:
        f.write(script)
    try:
        result = subprocess.run([sys.executable, "-m", "training.distribute.indexed_job", probe], env=env,
                                capture_output=True, text=True, cwd=ROOT)
    finally:
        os.remove(probe)
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "{'type': 'worker', 'index': 1}", result
    del env["TF_WORKERS"]
    result = subprocess.run([sys.executable, "-m", "training.distribute.indexed_job", "train.py"], env=env,
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "error: TF_WORKERS not set; run this in a pod of an indexed Job (completionMode: Indexed) whose manifest "
        "sets them, as deploy/kubernetes/indexed-job.yaml does"]
