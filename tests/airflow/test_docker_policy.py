"""The Docker policy proxy (docker/services/docker_policy.py) in front of the real engine: the
factory's own task container runs through it end to end (create, attach, start, wait, remove);
what would make a container root on the host, or read other containers' secrets, is refused
and creates nothing (issue 26). Nothing here sends traffic beyond this machine."""
import dataclasses
import http.client
import json
import os
import subprocess
import sys
import time
import types

import pytest

from conftest import REPO
from include import docker_task, settings
from tasks.triton.server import free_port

TASK_IMAGE = os.environ.get("SOCIAL_TONE_TASK_IMAGE", "social-tone/task:latest")
pytestmark = pytest.mark.skipif(subprocess.run(["docker", "image", "inspect", TASK_IMAGE],
                                               capture_output=True).returncode != 0,
                                reason="task image not built (docker/build-images.sh)")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    s = settings.load()
    s.data_root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = tmp_path_factory.mktemp("policy") / "proxy.log"
    env = {**os.environ, "POLICY_LISTEN": f"127.0.0.1:{port}", "POLICY_DATA_ROOT": str(s.data_root),
           "POLICY_IMAGES": "social-tone/task", "POLICY_NETWORKS": "none,host-only-in-this-test-is-not-allowed"}
    with open(log, "w") as out:
        p = subprocess.Popen([sys.executable, str(REPO / "docker" / "services" / "docker_policy.py")], env=env,
                             stdout=out, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/_ping")
            break
        except OSError:
            time.sleep(0.1)
    yield types.SimpleNamespace(port=port, settings=s, log=log)
    p.terminate()
    p.wait(10)


def ours() -> list[str]:
    return subprocess.run(["docker", "ps", "-aq"], capture_output=True, text=True, check=True).stdout.split()


def raw(port: int, method: str, path: str, body=None, headers=None) -> tuple[int, str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    r = c.getresponse()
    return r.status, r.read().decode()


def factory_body(s, **host) -> dict:
    """What docker-py sends for the factory's container (include/docker_task.py), then `host`
    merged into its HostConfig."""
    import docker
    op = docker_task.task(s, "probe", ["--help"], writes=[s.data_root / "runs"], network=False)
    c = docker.APIClient(base_url="unix://var/run/docker.sock", version="1.41")
    hc = c.create_host_config(mounts=op.mounts, network_mode="none", mem_limit=op.mem_limit, privileged=False,
                              **op.hardening)
    body = c.create_container_config(image=TASK_IMAGE, command=["python3", "-c", "print(1)"], host_config=hc,
                                     user="10001:10001", labels={docker_task.TI_LABEL: "t/probe/r"})
    body["HostConfig"].update(host)
    return body


def test_the_factorys_own_task_container_runs_through_the_policy(proxy):
    s = dataclasses.replace(proxy.settings, docker_url=f"tcp://127.0.0.1:{proxy.port}")
    op = docker_task.task(s, "probe", ["--help"], writes=[s.data_root / "runs"], network=False)
    op.command = ["python3", "-c", "import json, os; print(json.dumps({'uid': os.getuid(), 'ok': True}))"]
    ti = types.SimpleNamespace(dag_id="policy_test", task_id="probe", run_id=f"r{time.time_ns()}", map_index=-1)
    before = ours()
    assert op.execute(context={"ti": ti})["ok"] is True
    assert ours() == before, "removed after the run"
    log = proxy.log.read_text()
    assert "/containers/create -> allowed" in log and "/attach -> allowed" in log and "/wait -> allowed" in log


@pytest.mark.parametrize("name, change, why", [
    ("privileged", {"Privileged": True}, "privileged"),
    ("host network", {"NetworkMode": "host"}, "network 'host'"),
    ("host pid", {"PidMode": "host"}, "PidMode"),
    ("bind of /", {"Mounts": [{"Target": "/host", "Source": "/", "Type": "bind", "ReadOnly": False}]}, "outside the data root"),
    ("old-style bind", {"Binds": ["/:/host"]}, "Binds"),
    ("a capability back", {"CapAdd": ["SYS_ADMIN"]}, "CapAdd"),
    ("capabilities kept", {"CapDrop": []}, "capability"),
    ("seccomp off", {"SecurityOpt": ["no-new-privileges", "seccomp=unconfined"]}, "SecurityOpt"),
    ("writable root", {"ReadonlyRootfs": False}, "read-only"),
    ("a device", {"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "rwm"}]},
     "Devices"),
    ("a volume", {"Mounts": [{"Target": "/v", "Source": "x", "Type": "volume"}]}, "plain bind"),
])
def test_a_create_that_would_own_the_host_is_refused_and_creates_nothing(proxy, name, change, why):
    before = ours()
    status, text = raw(proxy.port, "POST", "/v1.41/containers/create", json.dumps(factory_body(proxy.settings, **change)))
    assert status == 403 and why in text, (name, text)
    assert ours() == before


def test_another_image_root_a_missing_label_and_case_tricks_are_refused(proxy):
    s = proxy.settings
    for body, why in [
        ({**factory_body(s), "Image": "social-tone/base:bookworm"}, "not a task image"),
        ({**factory_body(s), "User": "0:0"}, "root"),
        ({**factory_body(s), "User": None}, "root"),
        ({**factory_body(s), "Labels": {}}, "label"),
        # Docker matches field names case-insensitively: a field not named exactly is refused
        ({**factory_body(s), "hostconfig": {"privileged": True}}, "fields the policy does not allow"),
        ({**factory_body(s), "HostConfig": {**factory_body(s)["HostConfig"], "privileged": True}}, "privileged"),
    ]:
        status, text = raw(proxy.port, "POST", "/containers/create", json.dumps(body))
        assert status == 403 and why in text, (body.get("Image"), text)
    dup = json.dumps(factory_body(s))[:-1] + ', "Image": "alpine"}'  # the same field twice
    assert raw(proxy.port, "POST", "/containers/create", dup)[0] == 403
    status, text = raw(proxy.port, "POST", "/containers/create", json.dumps(factory_body(s)),
                       headers={"Transfer-Encoding": "chunked"})
    assert status == 411


def test_secrets_files_and_everything_a_step_does_not_need_are_refused(proxy):
    # a container that is not the factory's (created behind the proxy's back): nothing may touch it
    cid = subprocess.run(["docker", "create", TASK_IMAGE, "true"], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        for method, path in [("GET", f"/containers/{cid}/json"),  # its environment: other services' passwords
                             ("GET", f"/containers/{cid}/archive?path=/etc"), ("PUT", f"/containers/{cid}/archive"),
                             ("POST", f"/containers/{cid}/exec"), ("POST", f"/containers/{cid}/update"),
                             ("POST", f"/containers/{cid}/start"), ("DELETE", f"/containers/{cid}"),
                             ("POST", "/images/create?fromImage=alpine"), ("POST", "/build"),
                             ("GET", "/volumes"), ("POST", "/networks/create"), ("GET", "/secrets"),
                             ("GET", "/v1.41/containers/../images/json"), ("GET", "/v1.41/containers%2Fjson")]:
            status, text = raw(proxy.port, method, path, b"{}" if method in ("POST", "PUT") else None)
            assert status == 403, (method, path, text)
        assert subprocess.run(["docker", "inspect", "-f", "{{.State.Status}}", cid], capture_output=True,
                              text=True).stdout.strip() == "created", "untouched"
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    assert raw(proxy.port, "GET", "/_ping")[0] == 200
    assert raw(proxy.port, "GET", "/v1.41/containers/json?all=1")[0] == 200


def test_a_link_in_the_data_root_that_leads_out_of_it_is_no_way_out(proxy):
    """The engine resolves a bind source on the host: a symlink planted in the data dir would
    mount whatever it points to. The proxy sees the data dir (read-only in compose) and resolves it."""
    link = proxy.settings.data_root / "innocent-looking"
    link.symlink_to("/")
    try:
        mount = {"Target": "/x", "Source": str(link), "Type": "bind", "ReadOnly": True}
        status, text = raw(proxy.port, "POST", "/containers/create",
                           json.dumps(factory_body(proxy.settings, Mounts=[mount])))
        assert status == 403 and "outside the data root" in text, text
    finally:
        link.unlink()


def test_a_client_from_outside_the_proxys_own_networks_is_refused(proxy, tmp_path):
    """Docker isolates networks with iptables; where an engine runs without them, a container of
    another network could route to the proxy: the proxy answers only its own subnets (and
    loopback by default), whatever the engine does."""
    port = free_port()
    env = {**os.environ, "POLICY_LISTEN": f"127.0.0.1:{port}", "POLICY_DATA_ROOT": str(proxy.settings.data_root),
           "POLICY_CLIENTS": "10.255.255.0/24"}  # a network this test's client (127.0.0.1) is not on
    p = subprocess.Popen([sys.executable, str(REPO / "docker" / "services" / "docker_policy.py")], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                status, text = raw(port, "GET", "/_ping")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 403 and "client 127.0.0.1 is not on the proxy's own networks" in text, text
    finally:
        p.terminate()
        p.wait(10)
    sys.path.insert(0, str(REPO / "docker" / "services"))
    import docker_policy
    routes = tmp_path / "route"  # /proc/net/route of a container on one /16, with its default route
    routes.write_text("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
                      "eth0\t00000000\t010013AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
                      "eth0\t000013AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")
    assert [str(n) for n in docker_policy.own_subnets(str(routes))] == ["172.19.0.0/16"]
