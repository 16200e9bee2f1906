"""Serving: Triton (gRPC, HTTP) vs in-process ONNX Runtime, and hot reloads under load. One run.

The served model is the default recipe's (TrainConfig's candidates, trained 2 epochs on a
synthetic drop), named in the output. One tritonserver serves it twice: through Triton's C++
onnxruntime backend (the default) and through the Python backend's stub (the fallback), each
with --instances instances of --ort-threads ONNX Runtime threads.

1. Throughput at batch 1, 64 and 1024: in-process ORT (one session with instances x threads
   intra-op threads, one caller) against each backend over gRPC, HTTP and gRPC + system shared
   memory (copied in per request, and staged once as perf_analyzer does), with --concurrency
   requests in flight. Every mode's answer is checked against ORT first. Rounds alternate the
   order of the modes; the median is reported.
2. Reloads under load (the C++ backend): --clients gRPC clients loop on batch-64 requests while --reloads new
   versions are published and hot-reloaded one after another (tasks.triton.reload, canary
   included). Counts failed requests and reports latency p50/p99 during the reloads against
   a quiet baseline.

    python bench/serving.py [--reloads 100] [--clients 4] [--seconds 3] [--candidates mlp] [--json out.json]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import itertools
import json
import logging
import os
import platform
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tasks import synth
from tasks.export_onnx import export_onnx
from tasks.rundir import RunDir
from tasks.train import TrainConfig, train
from tasks.triton import repo as trepo
from tasks.triton.client import ADMIN_SECRET_ENV, GRPC_ADMIN_HEADER, TritonClient
from tasks.triton.reload import reload
from tasks.triton.server import TritonServer

ADMIN: dict[str, str] = {}  # the admin header, set in main()

MODEL = "social_tone"        # the C++ onnxruntime backend
PY_MODEL = "social_tone_py"  # the same graph on the Python backend
REGION_IDS = itertools.count()  # shared-memory region names are unique per server


def make_run(root: Path, candidates: str | None) -> tuple[Path, dict]:
    """A run of the default recipe's candidates (or the ones named), and what it is."""
    synth.write_labeled(root / "d", "d", rows=5000, seed=7)
    cfg = TrainConfig(max_epochs=2, **({"candidates": candidates} if candidates else {}))
    train([root / "d"], root / "run", cfg, tracking_uri="none")
    export_onnx(root / "run", tracking_uri="none")
    mc = RunDir(root / "run").model_config()
    import onnx
    params = sum(int(np.prod(t.dims)) for t in onnx.load(str(root / "run" / "model.onnx")).graph.initializer)
    model = {"candidates": cfg.candidates, "family": mc.get("family"), "hidden": mc.get("hidden"),
             "parameters": params, "inputs": [mc["img_dim"], mc["txt_dim"]], "labels": mc["n_labels"]}
    return root / "run", model


def ort_caller(onnx_path: Path, threads: int):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    return lambda img, txt: sess.run(["logits"], {"img_emb": img, "txt_emb": txt})[0]


def triton_caller(url: str, protocol: str, model: str):
    if protocol == "grpc":
        local = threading.local()

        def call(img, txt):
            if not hasattr(local, "c"):
                local.c = TritonClient(url, model)
            return local.c.infer(img, txt).logits
        return call
    import tritonclient.http as httpclient
    local = threading.local()

    def call(img, txt):
        if not hasattr(local, "c"):
            local.c = httpclient.InferenceServerClient(url)
        ins = [httpclient.InferInput("img_emb", list(img.shape), "FP32"),
               httpclient.InferInput("txt_emb", list(txt.shape), "FP32")]
        ins[0].set_data_from_numpy(img, binary_data=True)
        ins[1].set_data_from_numpy(txt, binary_data=True)
        r = local.c.infer(model, ins, outputs=[httpclient.InferRequestedOutput("logits", binary_data=True)])
        return r.as_numpy("logits")
    return call


def shm_caller(url: str, model: str, staged: bool = False):
    """gRPC with inputs and outputs in system shared memory: no tensor bytes on the socket.

    staged=False: the client copies each batch into its region, as a scoring client must.
    staged=True: the inputs are written once and every request reuses them, as perf_analyzer's
    --shared-memory=system does (Triton's own throughput tool; not installable here).
    """
    import tritonclient.grpc as g
    import tritonclient.utils.shared_memory as shm
    local, regions = threading.local(), []

    def call(img, txt):
        if not hasattr(local, "c"):
            local.c = g.InferenceServerClient(url)
            name = f"bench_{os.getpid()}_{next(REGION_IDS)}"
            isz, tsz, osz = img.nbytes, txt.nbytes, len(img) * 50 * 4
            local.h = shm.create_shared_memory_region(name, "/" + name, isz + tsz + osz)
            local.c.register_system_shared_memory(name, "/" + name, isz + tsz + osz, headers=ADMIN)
            regions.append((local.c, name, local.h))
            local.ins = [g.InferInput("img_emb", list(img.shape), "FP32"),
                         g.InferInput("txt_emb", list(txt.shape), "FP32")]
            local.ins[0].set_shared_memory(name, isz, 0)
            local.ins[1].set_shared_memory(name, tsz, isz)
            local.out = g.InferRequestedOutput("logits")
            local.out.set_shared_memory(name, osz, isz + tsz)
            local.out_at = isz + tsz
            shm.set_shared_memory_region(local.h, [img, txt])
        elif not staged:
            shm.set_shared_memory_region(local.h, [img, txt])
        local.c.infer(model, local.ins, outputs=[local.out])
        logits = shm.get_contents_as_numpy(local.h, np.float32, [len(img), 50], offset=local.out_at)
        return logits if staged else logits.copy()

    def release():
        for c, name, h in regions:
            c.unregister_system_shared_memory(name, headers=ADMIN)
            shm.destroy_shared_memory_region(h)
        regions.clear()
    call.release = release
    return call


def rows_per_second(call, img, txt, seconds: float, concurrency: int) -> float:
    call(img, txt)  # warm-up
    done, stop = [0], time.monotonic() + seconds

    def loop():
        n = 0
        while time.monotonic() < stop:
            call(img, txt)
            n += len(img)
        return n

    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        done = sum(pool.map(lambda _: loop(), range(concurrency)))
    return done / (time.monotonic() - t0)


BACKENDS = {"c++ onnxruntime": MODEL, "python stub": PY_MODEL}


def throughput(run: Path, server: TritonServer, seconds: float, concurrency: int, rounds: int,
               threads: int) -> list[dict]:
    rng = np.random.default_rng(0)
    modes = {"onnxruntime in-process": (ort_caller(run / "model.onnx", threads), 1)}
    for backend, model in BACKENDS.items():
        modes[f"{backend}: grpc"] = (triton_caller(server.grpc_url, "grpc", model), concurrency)
        modes[f"{backend}: http"] = (triton_caller(server.http_url, "http", model), concurrency)
    shm_modes = [(f"{backend}: grpc+shm{' staged' * staged}", model, staged)
                 for backend, model in BACKENDS.items() for staged in (False, True)]
    out = []
    for batch in (1, 64, 1024):
        for m, model, staged in shm_modes:
            modes[m] = (shm_caller(server.grpc_url, model, staged), concurrency)  # regions sized per batch
        img = rng.standard_normal((batch, 512), dtype=np.float32)
        txt = rng.standard_normal((batch, 768), dtype=np.float32)
        want = modes["onnxruntime in-process"][0](img, txt)
        for m, (call, _) in modes.items():  # nothing is measured that does not answer right
            np.testing.assert_allclose(call(img, txt), want, atol=1e-4, err_msg=m)
        got = {m: [] for m in modes}
        for r in range(rounds):
            order = list(modes) if r % 2 == 0 else list(reversed(modes))
            for m in order:
                call, conc = modes[m]
                got[m].append(rows_per_second(call, img, txt, seconds, conc))
        base = float(np.median(got["onnxruntime in-process"]))
        for m, vals in got.items():
            med = float(np.median(vals))
            out.append({"batch": batch, "mode": m, "rows_per_s": round(med), "vs_ort": round(med / base, 3),
                        "in_flight": modes[m][1]})
            print(f"batch {batch:5d}  {m:38s} {med:12.0f} rows/s  {med / base:5.2f}x ORT", flush=True)
        for m, _, _ in shm_modes:
            modes[m][0].release()
    return out


def latency_loop(url, img, txt, stop, lat, failures):
    with TritonClient(url, MODEL, retries=0) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                c.infer(img, txt)
                lat.append(time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001 - counting is the point
                failures.append(repr(e))


def reloads_under_load(run: Path, server: TritonServer, n_reloads: int, clients: int, quiet_s: float,
                       instances: int) -> dict:
    rng = np.random.default_rng(1)
    img = rng.standard_normal((64, 512), dtype=np.float32)
    txt = rng.standard_normal((64, 768), dtype=np.float32)

    def phase(during):
        stop, lat, failures = threading.Event(), [], []
        threads = [threading.Thread(target=latency_loop, args=(server.grpc_url, img, txt, stop, lat, failures))
                   for _ in range(clients)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        extra = during()
        elapsed = time.monotonic() - t0
        stop.set()
        for t in threads:
            t.join()
        ms = np.asarray(lat) * 1e3
        return {"requests": len(lat), "failures": len(failures), "failure_examples": failures[:3],
                "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
                "max_ms": round(float(ms.max()), 2), "seconds": round(elapsed, 1), **extra}

    quiet = phase(lambda: time.sleep(quiet_s) or {})

    def do_reloads():
        secs = []
        for i in range(n_reloads):
            trepo.publish(run, server.model_repo, MODEL, "onnxruntime", instances=instances)
            r = reload(server.model_repo, MODEL, url=server.grpc_url, run_dir=run)
            secs.append(r["load_seconds"])
            if (i + 1) % 10 == 0:
                print(f"  {i + 1} reloads, serving version {r['version']}", flush=True)
        return {"reloads": n_reloads, "load_seconds_median": round(float(np.median(secs)), 2),
                "final_version": trepo.versions(server.model_repo / MODEL)[-1]}

    loaded = phase(do_reloads)
    return {"clients": clients, "batch": 64, "quiet": quiet, "during_reloads": loaded}


def main() -> int:
    os.environ.setdefault(ADMIN_SECRET_ENV, secrets.token_urlsafe(32))  # the server and reload share it
    ADMIN[GRPC_ADMIN_HEADER] = os.environ[ADMIN_SECRET_ENV]  # shared memory is a restricted API
    ap = argparse.ArgumentParser()
    ap.add_argument("--reloads", type=int, default=100)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=3.0, help="per throughput measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4, help="Triton requests in flight")
    ap.add_argument("--instances", type=int, default=2, help="Triton model instances")
    ap.add_argument("--ort-threads", type=int, default=1, help="ONNX Runtime threads per Triton instance")
    ap.add_argument("--candidates", default=None, help="serve another model than the default recipe's "
                                                        "(e.g. mlp: a small model, where serving overhead shows)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        root = Path(tmp)
        run, model = make_run(root, args.candidates)
        print(f"served model: {json.dumps(model)}", flush=True)
        os.environ["SOCIAL_TONE_ORT_THREADS"] = str(args.ort_threads)  # both backends' configs
        trepo.publish(run, root / "repo", MODEL, "onnxruntime", instances=args.instances)
        trepo.publish(run, root / "repo", PY_MODEL, "python", execution_env=sys.prefix, instances=args.instances)
        with TritonServer(root / "repo", root / "triton") as server:
            for m in (MODEL, PY_MODEL):
                assert reload(root / "repo", m, url=server.grpc_url, run_dir=run)["canary"]["ok"]
                backend = TritonClient(server.grpc_url, m).config()["backend"]
                assert backend == {MODEL: "onnxruntime", PY_MODEL: "python"}[m], (m, backend)
            result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                                 f"{platform.python_version()}",
                      "date": time.strftime("%Y-%m-%d"), "model": model, "instances": args.instances,
                      "ort_threads": args.ort_threads, "concurrency": args.concurrency,
                      "in_process_threads": args.instances * args.ort_threads,
                      "throughput": throughput(run, server, args.seconds, args.concurrency, args.rounds,
                                               args.instances * args.ort_threads)}
            result["reloads"] = reloads_under_load(run, server, args.reloads, args.clients, quiet_s=10,
                                                   instances=args.instances)
    print(json.dumps(result["reloads"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
