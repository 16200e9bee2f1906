"""The Docker API as the task containers need it, and nothing more: a policy proxy in front of
/var/run/docker.sock (compose's `docker-proxy` service; standard library only).

Whoever reaches the raw socket is root on the host: a privileged container, the host's PID or
network namespace, or a bind of `/` is one API call away. Airflow's workers need to create,
run and remove task containers, so this proxy lets exactly that through:

  GET    /_ping /version /images/json /images/{name}/json /containers/json (a listing: no env)
  POST   /containers/create         only a container the factory (include/docker_task.py) would
                                    create: create_refusal() below, an allow-list of every field
  POST   /containers/{id}/start|wait|attach|stop|kill, GET /containers/{id}/logs|json,
  DELETE /containers/{id}           only on a container that carries the factory's label (its
                                    inspect shows what the worker itself put there; docker-py's
                                    attach asks for it)

Clients: only from the proxy's own networks (the directly connected subnets of its interfaces)
and loopback, or POLICY_CLIENTS. Docker isolates networks with iptables rules; on an engine
run without them, another network's container could route to the proxy's address, and is
refused here.

Everything else is refused with 403 and the reason: any other container's inspect (its
environment: other services' passwords), /archive, /exec, /update, image pulls,
volumes, networks, build, swarm, plugins. Each connection carries one request (the proxy asks
the engine for `Connection: close` and never forwards a second request); heads and bodies are
bounded; chunked bodies are refused.

Docker decodes JSON field names case-insensitively, so a field that differs from an allowed one
only by case (`"hostconfig"`, `"networkmode"`), or a field given twice, is refused rather than
guessed; any other field outside the allow-list is refused unless it is empty (false, 0, "",
[], {} or null: docker-py sends some, e.g. an empty PortBindings).

    POLICY_LISTEN=0.0.0.0:2375 POLICY_SOCKET=/var/run/docker.sock POLICY_DATA_ROOT=/srv/data \\
    POLICY_IMAGES=social-tone/task,social-tone/tensorrt POLICY_GPU_IMAGES=social-tone/tensorrt \\
    POLICY_NETWORKS=none,social-tone_tasks python3 docker_policy.py
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import socketserver
import struct
import sys
import urllib.parse

LABEL = "social-tone.task-instance"  # include/docker_task.py TI_LABEL: every container the factory starts
MAX_HEAD, MAX_BODY = 64 << 10, 1 << 20
API = r"(?:/v1\.\d+)?"
ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
READ_ONLY = [re.compile(f"^{API}{p}$") for p in (r"/_ping", r"/version", r"/images/json",
                                                  r"/images/[A-Za-z0-9][A-Za-z0-9_./:@-]*/json", r"/containers/json")]
CREATE = re.compile(f"^{API}/containers/create$")
ON_OURS = re.compile(f"^{API}/containers/(?P<id>{ID})(?:/(?P<op>start|wait|attach|stop|kill|logs|json))?$")
OPS = {"POST": {"start", "wait", "attach", "stop", "kill"}, "GET": {"logs", "json"}, "DELETE": {None}}

# Every field docker-py's create_container sends for the factory, and what each may hold.
TOP = {"Hostname", "Domainname", "ExposedPorts", "User", "Tty", "OpenStdin", "StdinOnce", "AttachStdin",
       "AttachStdout", "AttachStderr", "Env", "Cmd", "Image", "Volumes", "NetworkDisabled", "Entrypoint",
       "WorkingDir", "HostConfig", "NetworkingConfig", "MacAddress", "Labels", "StopSignal", "Healthcheck",
       "StopTimeout", "Runtime"}
MUST_BE_EMPTY = {"ExposedPorts", "Volumes", "NetworkingConfig", "MacAddress", "Runtime", "Healthcheck", "Domainname"}
HOST = {"Memory", "ReadonlyRootfs", "NetworkMode", "CapDrop", "SecurityOpt", "Ulimits", "LogConfig", "CpuShares",
        "Tmpfs", "PidsLimit", "NanoCpus", "Mounts", "DeviceRequests", "AutoRemove", "Privileged", "ShmSize"}
MOUNT = {"Target", "Source", "Type", "ReadOnly"}
NO_NEW_PRIVILEGES = (["no-new-privileges"], ["no-new-privileges:true"])


class Config:
    def __init__(self, env=os.environ):
        self.socket = env.get("POLICY_SOCKET", "/var/run/docker.sock")
        self.data_root = os.path.normpath(env["POLICY_DATA_ROOT"])
        self.images = set(filter(None, env.get("POLICY_IMAGES", "social-tone/task").split(",")))
        self.gpu_images = set(filter(None, env.get("POLICY_GPU_IMAGES", "").split(",")))
        self.networks = set(filter(None, env.get("POLICY_NETWORKS", "none").split(",")))
        given = env.get("POLICY_CLIENTS")  # default: its own subnets, and loopback (the healthcheck)
        self.clients = [ipaddress.ip_network(c) for c in given.split(",")] if given is not None else \
            [*own_subnets(), ipaddress.ip_network("127.0.0.0/8")]


def own_subnets(routes: str = "/proc/net/route") -> list:
    """The subnets this host (the proxy's container) is directly connected to."""
    nets = []
    with open(routes) as f:
        for line in f.read().splitlines()[1:]:
            iface, dest, gateway, _flags, _ref, _use, _metric, mask, *_ = line.split()
            if gateway == "00000000" and dest != "00000000":
                ip, netmask = (socket.inet_ntoa(struct.pack("<I", int(h, 16))) for h in (dest, mask))
                nets.append(ipaddress.ip_network(f"{ip}/{netmask}", strict=False))
    return nets


def _unique(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a field is given twice: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return dict(pairs)


def extra_fields(given: dict, allowed: set[str]) -> list[str]:
    """Fields outside `allowed` that could change anything: a case variant of an allowed one
    (Docker would read it as that field), or any other one that is not empty."""
    lower = {a.lower() for a in allowed}
    return sorted(k for k, v in given.items() if k not in allowed and (k.lower() in lower or v not in
                                                                        (None, False, 0, "", [], {})))


def repository(image: str) -> str:
    """"social-tone/task:latest" -> "social-tone/task" (a digest or a tag dropped)."""
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def under_root(path: str, root: str) -> bool:
    if not isinstance(path, str) or "\0" in path or not os.path.isabs(path):
        return False
    norm = os.path.normpath(path)
    if norm != root and not norm.startswith(root + "/"):
        return False
    # the engine resolves a bind source on the host: a link in the data dir must not lead out
    # of it (checked when the proxy sees the data dir, which compose mounts read-only)
    if os.path.isdir(root):
        try:  # strict: a folder the proxy cannot search (or a missing source) is no proof
            real, real_root = os.path.realpath(norm, strict=True), os.path.realpath(root, strict=True)
        except OSError:
            return False
        return real == real_root or real.startswith(real_root + "/")
    return True


def create_refusal(body: dict, cfg: Config) -> str | None:
    """Why this container may not be created, or None."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    if unknown := extra_fields(body, TOP):
        return f"fields the policy does not allow: {unknown}"
    if any(body.get(k) not in (None, {}, [], "") for k in MUST_BE_EMPTY):
        return f"one of {sorted(MUST_BE_EMPTY)} is set"
    image = body.get("Image")
    if not isinstance(image, str) or repository(image) not in cfg.images:
        return f"image {image!r} is not a task image ({', '.join(sorted(cfg.images))})"
    user = str(body.get("User") or "")
    if user.split(":", 1)[0] in ("", "0", "root"):
        return "the container would run as root (no User, or uid 0)"
    if body.get("OpenStdin") or body.get("AttachStdin"):
        return "stdin is not attached to task containers"
    labels = body.get("Labels")
    if not isinstance(labels, dict) or not labels.get(LABEL):
        return f"the factory's label {LABEL} is missing"
    host = body.get("HostConfig")
    if not isinstance(host, dict):
        return "no HostConfig"
    if unknown := extra_fields(host, HOST):
        return f"host settings the policy does not allow: {unknown}"
    if host.get("Privileged"):
        return "privileged containers are refused"
    if host.get("NetworkMode") not in cfg.networks:
        return f"network {host.get('NetworkMode')!r} is not one of {sorted(cfg.networks)}"
    if host.get("CapDrop") != ["ALL"]:
        return "every capability must be dropped (CapDrop [\"ALL\"])"
    if host.get("SecurityOpt") not in NO_NEW_PRIVILEGES:
        return "SecurityOpt must be exactly no-new-privileges"
    if host.get("ReadonlyRootfs") is not True:
        return "the root filesystem must be read-only"
    for limit in ("Memory", "PidsLimit", "NanoCpus"):
        if not isinstance(host.get(limit), int) or host[limit] <= 0:
            return f"{limit} must be a positive limit"
    log_cfg = host.get("LogConfig") or {}
    if log_cfg.get("Type") not in (None, "", "json-file", "local") or log_cfg.get("Config") not in (None, {}):
        return "only the engine's local log drivers, without options"
    for m in host.get("Mounts") or []:
        if not isinstance(m, dict) or set(m) - MOUNT or m.get("Type") != "bind":
            return f"mount {m!r}: only plain bind mounts (Target, Source, Type, ReadOnly)"
        if not under_root(m.get("Source"), cfg.data_root):
            return f"mount source {m.get('Source')!r} is outside the data root {cfg.data_root}"
    for r in host.get("DeviceRequests") or []:
        if repository(image) not in cfg.gpu_images or not isinstance(r, dict) \
                or r.get("Capabilities") != [["gpu"]] or r.get("Driver") not in ("", "nvidia", None):
            return "GPUs only for the TensorRT image, and nothing but GPUs"
    return None


def refuse(conn: socket.socket, status: int, reason: str) -> None:
    body = json.dumps({"message": f"social-tone docker policy: {reason}"}).encode()
    text = {400: "Bad Request", 403: "Forbidden", 411: "Length Required", 413: "Payload Too Large"}[status]
    conn.sendall(f"HTTP/1.1 {status} {text}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)


def engine(cfg: Config, head: bytes, body: bytes = b"") -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(cfg.socket)
    s.sendall(head + body)
    return s


def carries_label(cfg: Config, cid: str) -> bool:
    """Asked of the engine by the proxy itself (the inspect answer never reaches the client)."""
    with engine(cfg, f"GET /containers/{cid}/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode()) as s:
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if len(data) > 16 << 20:
                return False
    head, _, rest = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        return False
    if b"transfer-encoding: chunked" in head.lower():
        out = b""
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0] or b"0", 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        rest = out
    try:
        labels = (json.loads(rest).get("Config") or {}).get("Labels") or {}
    except ValueError:
        return False
    return bool(labels.get(LABEL))


def decide(cfg: Config, method: str, path: str, body: bytes) -> str | None:
    """Why the request is refused, or None."""
    if "%" in path or "//" in path or "/../" in path or path.endswith("/.."):
        return "encoded or unnormalised paths are refused"
    if method in ("GET", "HEAD") and any(p.match(path) for p in READ_ONLY):
        return None
    if method == "POST" and CREATE.match(path):
        try:
            return create_refusal(json.loads(body, object_pairs_hook=_unique), cfg)
        except ValueError as e:
            return f"the body is not valid JSON: {e}"
    m = ON_OURS.match(path)
    if m and method in OPS and m["op"] in OPS[method]:
        return None if carries_label(cfg, m["id"]) else f"container {m['id']} is not a social-tone task container"
    return f"{method} {path} is not something a task container needs"


class Handler(socketserver.BaseRequestHandler):
    cfg: Config

    def handle(self) -> None:
        conn = self.request
        client = ipaddress.ip_address(self.client_address[0])
        if not any(client in n for n in self.cfg.clients):
            print(f"client {client} refused: not on the proxy's own networks", flush=True)
            return refuse(conn, 403, f"client {client} is not on the proxy's own networks")
        conn.settimeout(60)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
            if len(data) > MAX_HEAD + MAX_BODY:
                return refuse(conn, 413, "request too large")
        head, _, body = data.partition(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            return refuse(conn, 413, "request head too large")
        try:
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, _version = request_line.split(" ")
            headers = [tuple(x.strip() for x in h.split(":", 1)) for h in header_lines]
            if any(len(h) != 2 for h in headers):
                raise ValueError
        except ValueError:
            return refuse(conn, 400, "malformed request")
        names = {k.lower(): v for k, v in headers}
        if "transfer-encoding" in names:
            return refuse(conn, 411, "chunked bodies are refused; send Content-Length")
        try:
            length = int(names.get("content-length", "0"))
        except ValueError:
            return refuse(conn, 400, "bad Content-Length")
        if not 0 <= length <= MAX_BODY:
            return refuse(conn, 413, f"a body over {MAX_BODY} bytes")
        conn.settimeout(30)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk
        body = body[:length]  # anything after it would be a second request: never forwarded
        path = urllib.parse.urlsplit(target).path
        reason = decide(self.cfg, method, path, body)
        print(f"{method} {path} -> {'allowed' if reason is None else 'refused: ' + reason}", flush=True)
        if reason is not None:
            return refuse(conn, 403, reason)
        upgrade = names.get("upgrade") is not None  # attach: the engine hijacks the connection
        kept = [(k, v) for k, v in headers if k.lower() != "connection"]
        kept.append(("Connection", "Upgrade" if upgrade else "close"))
        out = (f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept) + "\r\n").encode("latin-1")
        conn.settimeout(None)  # `wait` and log streams last as long as the step
        with engine(self.cfg, out, body) as up:  # nothing the client sends after this reaches the engine
            while chunk := up.recv(65536):
                conn.sendall(chunk)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> int:
    cfg = Config()
    host, _, port = os.environ.get("POLICY_LISTEN", "0.0.0.0:2375").rpartition(":")
    Handler.cfg = cfg
    with Server((host, int(port)), Handler) as server:
        print(f"docker policy on {host}:{port} -> {cfg.socket}: images {sorted(cfg.images)}, networks "
              f"{sorted(cfg.networks)}, binds under {cfg.data_root}, clients {[str(n) for n in cfg.clients]}",
              flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
