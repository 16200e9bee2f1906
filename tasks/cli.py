"""`python -m tasks <command>`: every pipeline step as a command with explicit paths.

Logs go to stderr, one plain line each. The last stdout line is a small JSON result that
Airflow's DockerOperator can push to XCom. Exit codes: 0 ok, 2 usage error, 3 bad input
(the message names the file and the problem), 4 a check on our own output failed (ONNX
parity, Triton canary: rolled back), 5 skipped (convert-tensorrt without a GPU, or its plan
failed parity and the ONNX graph is served), 6 a service (Triton) stayed unreachable through the retries, 1 anything unexpected.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path

from tasks import env, rundir  # stdlib only: settings and the run directory's file names

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_SKIPPED, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4, 5, 6
log = logging.getLogger("tasks")


def _flag(v: str) -> bool:
    """--force / --force true / --force False: lets a DAG template pass a param straight through."""
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {v!r}")


def _version(args, attr: str) -> int | None:
    """A version given directly, or read from the JSON record `publish --record` wrote."""
    if getattr(args, attr) is not None:
        return getattr(args, attr)
    path = getattr(args, attr + "_file")
    return int(json.loads(Path(path).read_text())["version"]) if path else None


def _tracking(args) -> str | None:
    return args.tracking_uri or env.get("MLFLOW_TRACKING_URI")


def cmd_synth(args) -> dict:
    from tasks import synth
    if args.kind == "labeled":
        m = synth.write_labeled(args.out, args.drop_id or Path(args.out).name, rows=args.rows, seed=args.seed,
                                id_start=args.id_start, world_seed=args.world_seed)
        return {"drop": str(args.out), "rows": m.rows}
    start = dt.date.fromisoformat(args.start)
    days = []
    for i in range(args.days):
        day = start + dt.timedelta(days=i)
        synth.write_scoring_day(Path(args.out) / day.isoformat(), day, args.rows, seed=args.seed,
                                world_seed=args.world_seed if args.world_seed is not None else args.seed)
        days.append(day.isoformat())
    return {"root": str(args.out), "days": days}


def cmd_import_warcov(args) -> dict:
    from tasks import warcov
    m = warcov.import_warcov(args.img, args.txt, args.y, args.out, args.drop_id or Path(args.out).name,
                             args.names, args.align, args.id_column)
    return {"drop": str(args.out), "rows": m.rows}


def cmd_validate(args) -> dict:
    from tasks import validate
    report = validate.validate_drop(args.drop, require_kind=args.kind, schema=validate.read_schema(args.schema))
    if args.report:
        validate.write_report(report, args.report)
    (log.info if report.ok else log.error)("%s", report.summary())
    result = {"ok": report.ok, "rows": report.rows, "problems": [p.code for p in report.problems]}
    if not report.ok and not args.no_fail:
        raise BadInput(result)
    return result


def cmd_train(args) -> dict:
    from tasks import train
    from tasks.recipe import KNOBS
    overrides = train.read_overrides(args.config, {**{k.field: getattr(args, k.name) for k in KNOBS},
                                                   "loader": args.loader,
                                                   "tune_thresholds": False if args.fixed_threshold else None})
    cfg = train.TrainConfig.from_overrides(overrides)
    s = train.train(args.data, args.out, cfg, tracking_uri=_tracking(args), run_name=args.run_name)
    return {"run": str(args.out), "mlflow_run_id": s["mlflow_run_id"], "val_macro_f1": s["val_macro_f1_tuned"],
            "best_epoch": s["best_epoch"], "seconds": round(s["seconds"], 1)}


def cmd_evaluate(args) -> dict:
    from tasks import evaluate
    champion = args.champion
    if champion is None and args.champion_pointer is not None:
        from tasks.promote import read_pointer
        pointer = read_pointer(args.champion_pointer)
        champion = Path(pointer["run"]) if pointer else None
    r = evaluate.evaluate(args.run, args.data, args.out, champion=champion, with_baseline=not args.no_baseline,
                          tracking_uri=_tracking(args), baseline_rows=args.baseline_rows)
    return {"metrics": str(Path(args.out) / rundir.METRICS),
            **{f"{k}_macro_f1": round(m["macro_f1"], 4) for k, m in r["models"].items()}}


def cmd_export_onnx(args) -> dict:
    from tasks import export_onnx
    r = export_onnx.export_onnx(args.run, args.out, opset=args.opset or export_onnx.OPSET, atol=args.atol,
                                tracking_uri=_tracking(args))
    return {"run": str(args.run), "onnx": r["onnx"], "parity_max_abs_diff": r["max_abs_diff"],
            "parity_rows": r["rows"]}


def cmd_ingest(args) -> dict:
    from tasks import ingest
    if args.validated is not None:
        report = json.loads(Path(args.validated).read_text())
        if not report.get("ok") or not report.get("manifest_sha256"):
            raise ValueError(f"{args.validated}: not the report of a valid drop; nothing was ingested")
        digest = report["manifest_sha256"]
    else:  # no report: validate first, and ingest only the manifest that validation read
        from tasks.validate import validate_drop
        checked = validate_drop(args.drop, require_kind="labeled")
        if not checked.ok:
            raise ValueError(f"{args.drop}: not a valid drop, nothing was ingested: {checked.summary()}")
        digest = checked.manifest_sha256
    return ingest.ingest(args.drop, args.dataset, remote=args.remote, manifest_sha256=digest)


def cmd_gate(args) -> dict:
    from tasks import gate
    from tasks.errors import Skipped
    b = gate.gate(args.metrics, args.tolerance, args.floor, args.force)
    if not b["blessed"]:
        raise Skipped("not blessed: " + "; ".join(b["reasons"]))
    return b


def cmd_promote(args) -> dict:
    from tasks import promote
    return promote.promote(args.run, args.pointer, version=_version(args, "version"),
                           registered_model=args.registered_model, tracking_uri=_tracking(args),
                           metrics_json=args.metrics)


def cmd_convert_tensorrt(args) -> dict:
    from tasks import convert_tensorrt as ct
    if args.skip:
        from tasks.errors import Skipped
        raise Skipped("skipped on request (--skip)")
    return ct.convert(args.run, onnx_path=args.onnx, out=args.out, max_batch=args.max_batch, opt_batch=args.opt_batch,
                      fp16=args.fp16, atol=args.atol, require=args.require_gpu)


def cmd_publish(args) -> dict:
    from tasks.triton import repo as trepo
    blessing = rundir.require_blessed(args.run)  # before anything is written
    exec_env = args.execution_env or env.get("SOCIAL_TONE_TRITON_EXECUTION_ENV") or \
        (sys.prefix if args.backend == "python" else None)
    r = trepo.publish(args.run, args.repo, args.model, args.backend, model_file=args.model_file, keep=args.keep,
                      max_batch_size=args.max_batch, execution_env=exec_env, instances=args.instances, gpu=args.gpu)
    if "fallback" in r:
        log.warning("%s", r["fallback"])
    result = {"model": args.model, **r, "repo": str(args.repo),
              **({"forced": blessing["forced"] and not blessing["passed"]} if blessing else {})}
    record = args.record or rundir.RunPaths.published_of(args.run)
    if record:
        from tasks.fsutil import atomic_write_json
        atomic_write_json(record, result)
        result["record"] = str(record)
    return result


def cmd_reload(args) -> dict:
    from tasks.triton import reload
    return reload.reload(args.repo, args.model, url=args.url, run_dir=args.run, n_canary=args.canary_rows,
                         atol=args.atol, timeout=args.timeout, retries=args.retries,
                         expect_version=_version(args, "expect_version"))


def cmd_rollback(args) -> dict:
    from tasks.triton import reload
    return reload.rollback(args.repo, args.model, args.url, args.reason, args.timeout)


def cmd_score(args) -> dict:
    from tasks import score
    from tasks.contract import read_manifest
    m = read_manifest(args.drop)
    if args.onnx_dir:
        scorer = score.OnnxScorer(args.onnx_dir)
    elif args.repo is None:
        raise ValueError("score through Triton needs --repo: the model repository holds each version's thresholds")
    else:
        scorer = score.TritonScorer(args.url, args.model, args.repo, m.n_labels, m.img_dim, m.txt_dim)
    r = score.score(args.drop, args.out, scorer, scorer.names, batch=args.batch, inflight=args.inflight)
    if not args.verbose:
        r.pop("topic_counts")
    return r


def cmd_monitor(args) -> dict:
    from tasks import monitor, monitoring
    r = monitor.monitor(args.predictions, dt.date.fromisoformat(args.day), args.root, drop=args.drop,
                        window=args.window, tracking_uri=_tracking(args), dashboard=args.dashboard, z_thr=args.z,
                        min_count=args.min_count, min_history=args.min_history, drift_thr=args.drift,
                        psi_thr=args.psi)
    return {"day": r["day"], "rows": r["rows"], "status": r["status"], "spikes": r["spikes"],
            "drift": {m: v["flagged"] for m, v in r["drift"].items()},
            "report": str(monitoring.day_dir(args.root, r["day"]) / monitoring.PAGE),
            "dashboard": args.dashboard and str(args.dashboard)}


def cmd_detect(args) -> dict:
    from tasks import detect
    return detect.detect_csv(args.csv, args.out, args.z)


def cmd_data_checkout(args) -> dict:
    from tasks import lineage
    return lineage.checkout(args.run, args.dataset, args.out)


def cmd_dashboard(args) -> dict:
    from tasks import dashboard
    return dashboard.build(args.root, args.out)


def _prepare_start(repo: Path, model: str) -> dict:
    from tasks.triton.repo import prepare_start
    r = prepare_start(repo, model)
    for v in r["retired"]:
        log.warning("version %d of %s never passed a canary: moved to .rejected/", v, model)
    return r


def cmd_triton_prepare(args) -> dict:
    return _prepare_start(args.repo, args.model)


def cmd_serve(args) -> dict:
    import signal
    from tasks.triton.server import TritonServer
    server = TritonServer(args.repo, args.workdir, args.http_port, args.grpc_port, args.metrics_port, args.bind)
    with server:
        # block SIGTERM/SIGINT only now (the server process must not inherit the mask), then wait on them
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        from tasks.triton.client import ADMIN_SECRET_ENV, TritonClient, admin_secret
        if admin_secret() is None:
            log.warning("%s is not set: the model-repository API is closed with a random secret nobody else "
                        "knows, so no reload or rollback can reach this server", ADMIN_SECRET_ENV)
        if args.load and _prepare_start(args.repo, args.load)["version"] is not None:
            TritonClient(server.grpc_url, args.load, secret=server.admin_secret).load()
        log.info("tritonserver ready: gRPC %s, HTTP %s (log %s)", server.grpc_url, server.http_url, server.log_path)
        print(json.dumps({"grpc": server.grpc_url, "http": server.http_url, "pid": server.proc.pid}), flush=True)
        while server.proc.poll() is None:
            if signal.sigtimedwait([signal.SIGTERM, signal.SIGINT], 1.0) is not None:
                log.info("stopping tritonserver")
                break
    return {"stopped": True, "returncode": server.proc.returncode}


class BadInput(Exception):
    """Raised with the JSON result of a check that failed on its input."""


def build_parser() -> argparse.ArgumentParser:
    from tasks.parity import ATOL  # light: numpy only
    from tasks.triton.repo import BACKENDS, DEFAULT_BACKEND, MAX_BATCH  # light: no ML imports
    from tasks.gate import FLOOR, TOLERANCE
    from tasks.recipe import BASELINE_ROWS, KNOBS
    from tasks.detect import DAILY, SERIES_Z  # numpy only
    model = env.get("SOCIAL_TONE_MODEL_NAME")
    p = argparse.ArgumentParser(prog="python -m tasks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write deterministic WarCov-like drops")
    s.add_argument("--out", type=Path, required=True, help="drop dir (labeled) or root of day dirs (scoring)")
    s.add_argument("--kind", choices=("labeled", "scoring"), default="labeled")
    s.add_argument("--rows", type=int, default=70_252, help="rows (labeled) or rows per day (scoring)")
    s.add_argument("--seed", type=int, default=42, help="seed for the posts")
    s.add_argument("--world-seed", type=int, default=None, help="seed for the topics (default: 42 for scoring, "
                                                                "--seed for labeled); keep it fixed across drops")
    s.add_argument("--drop-id", default=None, help="default: the --out folder name")
    s.add_argument("--id-start", type=int, default=0, help="first post number, so drops do not share ids")
    s.add_argument("--days", type=int, default=7, help="scoring: number of days")
    s.add_argument("--start", default="2026-01-01", help="scoring: first day (YYYY-MM-DD)")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("import-warcov", help="convert the published WarCov files into a drop")
    s.add_argument("--img", type=Path, required=True)
    s.add_argument("--txt", type=Path, required=True)
    s.add_argument("--y", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--drop-id", default=None)
    s.add_argument("--names", type=Path, default=None, help="text file, one label name per line")
    s.add_argument("--align", choices=("strict", "truncate"), default="strict")
    s.add_argument("--id-column", default=None, help="CSV column holding post ids (else row numbers)")
    s.set_defaults(func=cmd_import_warcov)

    s = sub.add_parser("validate", help="check a drop against its manifest (never modifies it)")
    s.add_argument("drop", type=Path)
    s.add_argument("--report", type=Path, default=None, help="write the JSON report here")
    s.add_argument("--kind", choices=("labeled", "unlabeled"), default=None, help="require this kind")
    s.add_argument("--no-fail", action="store_true", help="exit 0 on an invalid drop (the report says it)")
    s.add_argument("--schema", type=Path, default=None, help="the dataset's schema.json: a labeled drop must match "
                                                             "its dims and label names (absent: no check yet)")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("train", help="train the fusion MLP; writes a run dir")
    s.add_argument("--data", type=Path, nargs="+", required=True, help="drops or folders of drops")
    s.add_argument("--out", type=Path, required=True, help="run dir to write (replaced atomically)")
    s.add_argument("--config", type=Path, default=None, help="JSON of hyper-parameters (flags override it)")
    for k in KNOBS:  # defaults live in tasks/recipe.py (None here: "not given", the config file may set it)
        s.add_argument(k.flag, type=k.type, default=None, choices=k.choices, help=f"{k.help} (default {k.default})")
    s.add_argument("--loader", choices=("tensor", "dataloader"), default=None)
    s.add_argument("--fixed-threshold", action="store_true", help="no threshold tuning: 0.5 for every class")
    s.add_argument("--tracking-uri", default=None, help="MLflow URI (default $MLFLOW_TRACKING_URI; 'none' = off)")
    s.add_argument("--run-name", default=None)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="candidate vs champion vs baseline on the test split")
    s.add_argument("--run", type=Path, required=True, help="candidate run dir")
    s.add_argument("--data", type=Path, nargs="+", required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--champion", type=Path, default=None, help="champion run dir, if any")
    s.add_argument("--champion-pointer", type=Path, default=None, help="or: champion.json written by promote")
    s.add_argument("--no-baseline", action="store_true")
    s.add_argument("--baseline-rows", type=int, default=BASELINE_ROWS, help="LogReg baseline: fit on a seeded "
                                                                            "sample of at most this many train rows")
    s.add_argument("--tracking-uri", default=None)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("export-onnx", help="export ONNX and check parity against PyTorch on the run's check rows")
    s.add_argument("--run", type=Path, required=True)
    s.add_argument("--out", type=Path, default=None, help="default: RUN/model.onnx")
    s.add_argument("--opset", type=int, default=None, help="default: what serving reads (tasks/export_onnx.py OPSET)")
    s.add_argument("--atol", type=float, default=ATOL[("onnx", "fp32")])
    s.add_argument("--tracking-uri", default=None)
    s.set_defaults(func=cmd_export_onnx)

    s = sub.add_parser("ingest", help="add a validated drop to the DVC-versioned dataset")
    s.add_argument("drop", type=Path)
    s.add_argument("--dataset", type=Path, required=True, help="dataset root (drops land in DATASET/drops/)")
    s.add_argument("--remote", type=Path, default=None, help="DVC remote dir to push to")
    s.add_argument("--validated", type=Path, default=None, help="the validation report: ingest only the manifest "
                                                                "it validated (sha256); without it the drop is "
                                                                "validated first")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("gate", help="bless a candidate vs the champion (exit 5 = not blessed)")
    s.add_argument("--metrics", type=Path, required=True, help="metrics.json from evaluate")
    s.add_argument("--tolerance", type=float, default=TOLERANCE)
    s.add_argument("--floor", type=float, default=FLOOR)
    s.add_argument("--force", type=_flag, nargs="?", const=True, default=False)
    s.set_defaults(func=cmd_gate)

    s = sub.add_parser("promote", help="champion pointer + MLflow registry alias 'champion'")
    s.add_argument("--run", type=Path, required=True)
    s.add_argument("--pointer", type=Path, required=True, help="champion.json to write")
    s.add_argument("--version", type=int, default=None, help="the Triton version now serving")
    s.add_argument("--version-file", type=Path, default=None, help="... as recorded by publish --record")
    s.add_argument("--metrics", type=Path, default=None)
    s.add_argument("--registered-model", default=model, help="MLflow registry name (default: the model name)")
    s.add_argument("--tracking-uri", default=None)
    s.set_defaults(func=cmd_promote)

    s = sub.add_parser("convert-tensorrt", help="TensorRT plan + parity vs ONNX Runtime (exit 5 = skipped: no GPU)")
    s.add_argument("--run", type=Path, required=True)
    s.add_argument("--onnx", type=Path, default=None, help="default: RUN/model.onnx")
    s.add_argument("--out", type=Path, default=None, help="default: RUN/model.plan")
    s.add_argument("--max-batch", type=int, default=MAX_BATCH, help="= Triton's max_batch_size")
    s.add_argument("--opt-batch", type=int, default=256)
    s.add_argument("--fp16", type=_flag, nargs="?", const=True, default=False)
    s.add_argument("--skip", type=_flag, nargs="?", const=True, default=False, help="skip (exit 5) on request")
    s.add_argument("--require-gpu", type=_flag, nargs="?", const=True, default=False,
                   help="no GPU here is a failure (exit 4), not a skip (SOCIAL_TONE_GPU=true)")
    s.add_argument("--atol", type=float, default=None, help="default: tasks/parity.py's tolerance for the precision")
    s.set_defaults(func=cmd_convert_tensorrt)

    triton_url = env.get("SOCIAL_TONE_TRITON_GRPC")
    s = sub.add_parser("publish", help="write the next version dir into a Triton model repository (atomic)")
    s.add_argument("--run", type=Path, required=True, help="run dir (thresholds, model config)")
    s.add_argument("--repo", type=Path, required=True)
    s.add_argument("--model", default=model)
    s.add_argument("--model-file", type=Path, default=None,
                   help="default: RUN/model.onnx (RUN/model.plan for TensorRT; without one, the ONNX "
                        "graph on the onnxruntime backend)")
    s.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND)
    s.add_argument("--keep", type=int, default=3)
    s.add_argument("--max-batch", type=int, default=MAX_BATCH, help="Triton's max_batch_size")
    s.add_argument("--record", type=Path, default=None, help="also write the result JSON here (default: the run's "
                                                              "published.json when RUN is a run's model dir)")
    s.add_argument("--instances", type=int, default=2, help="model instances (2 x 1 ORT thread was fastest "
                                                              "on 2 CPU cores: docs/benchmarks.md)")
    s.add_argument("--gpu", type=_flag, nargs="?", const=True, default=False,
                   help="onnxruntime backend: run the instances on the GPU (KIND_GPU)")
    s.add_argument("--execution-env", default=None, help="python backend: env with numpy+onnxruntime "
                                                          "(default: this interpreter's prefix)")
    s.set_defaults(func=cmd_publish)

    s = sub.add_parser("reload", help="hot-reload the newest version on Triton; canary; roll back on failure")
    s.add_argument("--run", type=Path, required=True, help="run dir whose model.onnx is the canary reference")
    s.add_argument("--repo", type=Path, required=True)
    s.add_argument("--model", default=model)
    s.add_argument("--url", default=triton_url, help="Triton gRPC address (default $SOCIAL_TONE_TRITON_GRPC)")
    s.add_argument("--canary-rows", type=int, default=None, help="the first N of the run's check rows "
                                                                  "(default: all, the rows ONNX parity used)")
    s.add_argument("--atol", type=float, default=None, help="default: the tolerance the version was published "
                                                            "with (per backend and precision)")
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("--retries", type=int, default=5, help="attempts while Triton is unreachable (backoff 1,2,4.. s)")
    s.add_argument("--expect-version", type=int, default=None, help="fail unless this is the newest published version")
    s.add_argument("--expect-version-file", type=Path, default=None, help="... as recorded by publish --record")
    s.set_defaults(func=cmd_reload)

    s = sub.add_parser("rollback", help="retire the serving version and serve the one before")
    s.add_argument("--repo", type=Path, required=True)
    s.add_argument("--model", default=model)
    s.add_argument("--url", default=triton_url)
    s.add_argument("--reason", default="manual rollback")
    s.add_argument("--timeout", type=float, default=120)
    s.set_defaults(func=cmd_rollback)

    s = sub.add_parser("triton-prepare", help="before a Triton (re)start with --load-model: retire versions that "
                                              "never passed a canary, restore the serving version's config")
    s.add_argument("--repo", type=Path, required=True)
    s.add_argument("--model", default=model)
    s.set_defaults(func=cmd_triton_prepare)

    s = sub.add_parser("score", help="score a drop through Triton (or --onnx-dir) into Parquet/CSV/JSON")
    s.add_argument("drop", type=Path)
    s.add_argument("--out", type=Path, required=True, help=".parquet, .csv or .jsonl")
    s.add_argument("--url", default=triton_url)
    s.add_argument("--model", default=model)
    s.add_argument("--repo", type=Path, default=None, help="Triton's model repository (each version's thresholds)")
    s.add_argument("--onnx-dir", type=Path, default=None, help="in-process ONNX Runtime on this run/version dir")
    s.add_argument("--batch", type=int, default=1024, help="rows per request")
    s.add_argument("--inflight", type=int, default=4, help="requests in flight")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("monitor", help="topic spikes and drift for one day -> ROOT/DAY/ report.json, png, html")
    s.add_argument("--predictions", type=Path, required=True, help="the day's Parquet from tasks score")
    s.add_argument("--day", required=True, help="YYYY-MM-DD")
    s.add_argument("--root", type=Path, required=True, help="monitoring root (earlier days are read from here)")
    s.add_argument("--drop", type=Path, default=None, help="the day's drop, for input drift")
    s.add_argument("--window", type=int, default=DAILY.window, help="trailing days to compare with")
    s.add_argument("--z", type=float, default=DAILY.z, help="robust z-score for a spike")
    s.add_argument("--min-count", type=int, default=DAILY.min_count, help="minimum expected posts for a spike")
    s.add_argument("--min-history", type=int, default=DAILY.min_history, help="earlier days needed before spikes are called")
    s.add_argument("--drift", type=float, default=0.05, help="input mean-shift floor (in units of spread)")
    s.add_argument("--psi", type=float, default=0.1, help="prediction-drift PSI threshold")
    s.add_argument("--dashboard", type=Path, default=None, help="also rebuild the trends dashboard (HTML) here")
    s.add_argument("--tracking-uri", default=None)
    s.set_defaults(func=cmd_monitor)

    s = sub.add_parser("detect", help="spikes in one volume series: NAB's timestamp,value CSV -> "
                                      "timestamp,value,anomaly_score,alarm,z (tasks/detect.py)")
    s.add_argument("--csv", type=Path, required=True, help="input: a header 'timestamp,value', then one row per point")
    s.add_argument("--out", type=Path, required=True, help="output CSV (written atomically)")
    s.add_argument("--z", type=float, default=SERIES_Z, help="robust z-score that raises an alarm "
                   "(docs/benchmarks.md 'Spike alerts': what each z costs in false alarms)")
    s.set_defaults(func=cmd_detect)

    s = sub.add_parser("data", help="the DVC-versioned dataset: `data checkout` restores a model's training data")
    data = s.add_subparsers(dest="data_command", required=True)
    s = data.add_parser("checkout", help="restore exactly the drops a model was trained on (its lineage.json)")
    s.add_argument("--run", type=Path, required=True, help="the model's run dir (RUN/lineage.json)")
    s.add_argument("--dataset", type=Path, required=True, help="the DVC dataset root (holds .dvc/cache)")
    s.add_argument("--out", type=Path, required=True, help="folder to restore the drops into (atomically)")
    s.set_defaults(func=cmd_data_checkout)

    s = sub.add_parser("dashboard", help="the trends dashboard over every monitored day -> one HTML file")
    s.add_argument("--root", type=Path, required=True, help="monitoring root (ROOT/YYYY-MM-DD/report.json)")
    s.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    s.set_defaults(func=cmd_dashboard)

    s = sub.add_parser("serve", help="run the CPU tritonserver (nvidia-pytriton) in the foreground")
    s.add_argument("--repo", type=Path, required=True)
    s.add_argument("--workdir", type=Path, required=True, help="backends and the server log go here")
    s.add_argument("--http-port", type=int, default=8000)
    s.add_argument("--grpc-port", type=int, default=8001)
    s.add_argument("--metrics-port", type=int, default=8002)
    s.add_argument("--load", default=None, help="load this model at start: its last version that passed a "
                                                "canary (newer, unverified versions are moved aside)")
    s.add_argument("--bind", default="127.0.0.1", help="listen address (0.0.0.0 only inside a container network)")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from tasks.contract import ContractError
    from tasks.errors import CheckFailed, Skipped, Unavailable
    import time
    t0 = time.monotonic()
    try:
        result = args.func(args)
    except Skipped as e:
        log.warning("skipped: %s", e)
        print(json.dumps({"ok": True, "skipped": True, "reason": str(e)}))
        return EXIT_SKIPPED
    except Unavailable as e:
        log.error("%s", e)
        print(json.dumps({"ok": False, "error": str(e)}))
        return EXIT_UNAVAILABLE
    except CheckFailed as e:
        log.error("%s", e)
        print(json.dumps({"ok": False, "error": str(e)}))
        return EXIT_CHECK_FAILED
    except BadInput as e:
        print(json.dumps(e.args[0]))
        return EXIT_BAD_INPUT
    except (ContractError, FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        print(json.dumps({"ok": False, "error": str(e)}))
        return EXIT_BAD_INPUT
    except PermissionError as e:  # e.g. Triton refused a call without the admin secret
        log.error("%s", e)
        print(json.dumps({"ok": False, "error": str(e)}))
        return EXIT_ERROR
    # the task's own compute time: bench/drop_to_serving.py subtracts it from the wall time
    print(json.dumps({**result, "elapsed_s": round(time.monotonic() - t0, 3)}, default=str))
    return EXIT_OK
