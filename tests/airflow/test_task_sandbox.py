"""The factory's task containers, run for real on the Docker engine: what a step's process can
and cannot do (issue 26). The probe replaces the step's command; everything else is the
factory's (include/docker_task.py), so this is what every DAG step gets."""
import os
import subprocess

import pytest

from include import docker_task, settings

pytestmark = pytest.mark.skipif(subprocess.run(["docker", "image", "inspect", os.environ.get(
    "SOCIAL_TONE_TASK_IMAGE", "social-tone/task:latest")], capture_output=True).returncode != 0,
    reason="task image not built (docker/build-images.sh)")

PROBE = r'''
import json, os, pathlib, sys, time
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
def writable(p):
    f = pathlib.Path(p, ".probe")
    try:
        f.write_text("x"); f.unlink(); return True
    except OSError:
        return False
def cgroup(v2, v1):
    for p in (v2, v1):
        if os.path.exists(p):
            return open(p).read().strip()
t0 = time.time()
import matplotlib.pyplot, tasks.train, tasks.evaluate  # the heaviest step imports, on a read-only root
mounts = {m.split()[1]: (m.split()[2], m.split()[3].split(",")) for m in open("/proc/self/mounts")}
print(json.dumps({
    "root": mounts["/"], "tmp": mounts.get("/tmp"), "var_tmp": mounts.get("/var/tmp"),
    "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(), "uid": os.getuid(),
    "writable": {p: writable(p) for p in ("/", "/app", "/opt/venv", "/etc", "/tmp", "/var/tmp", *sys.argv[1:])},
    "cpu_max": cgroup("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    "pids_max": cgroup("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
    "import_s": round(time.time() - t0, 1)}))
'''


def test_a_step_runs_without_privileges_on_a_read_only_root_within_hard_limits(airflow_db, tmp_path):
    s = settings.load()
    runs = s.data_root / "runs"
    op = docker_task.task(s, "probe", ["--help"], writes=[runs], network=False)
    assert op.hardening["cap_drop"] == ["ALL"] and op.hardening["read_only"] is True
    op.command = ["python3", "-c", PROBE, str(s.data_root), str(runs)]
    got = op.execute(context={})
    assert got["cap_eff"] == "0000000000000000", "no capabilities at all"
    assert got["no_new_privs"] == "1" and got["uid"] != 0
    assert "ro" in got["root"][1], got["root"]  # the root filesystem itself, whoever the user
    assert got["tmp"][0] == got["var_tmp"][0] == "tmpfs" and "nosuid" in got["tmp"][1], got["tmp"]
    w = got["writable"]
    assert not any(w[p] for p in ("/", "/app", "/opt/venv", "/etc")), w  # the image cannot be changed
    assert w["/tmp"] and w["/var/tmp"], w  # tmpfs
    assert not w[str(s.data_root)] and w[str(runs)], w  # only what the step writes
    assert got["cpu_max"].split()[0] == str(int(s.task_cpus * 100_000)), got["cpu_max"]  # a quota, not shares
    assert got["pids_max"] == str(s.task_pids)
