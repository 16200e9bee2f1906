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

from tasks.errors import (EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_OK, EXIT_SKIPPED,  # noqa: F401
                          EXIT_UNAVAILABLE, EXIT_USAGE)
log = logging.getLogger("tasks")


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
    return {"model_dir": str(args.out), "mlflow_run_id": s["mlflow_run_id"], "val_macro_f1": s["val_macro_f1_tuned"],
            "best_epoch": s["best_epoch"], "seconds": round(s["seconds"], 1)}


def cmd_evaluate(args) -> dict:
    from tasks import evaluate
    champion = args.champion
    if champion is None and args.champion_pointer is not None:
        from tasks.promote import read_pointer
        pointer = read_pointer(args.champion_pointer)
        champion = Path(pointer["run"]) if pointer else None
    r = evaluate.evaluate(args.model_dir, args.data, args.out, champion=champion, with_baseline=not args.no_baseline,
                          tracking_uri=_tracking(args), baseline_rows=args.baseline_rows)
    return {"metrics": str(Path(args.out) / rundir.METRICS),
            **{f"{k}_macro_f1": round(m["macro_f1"], 4) for k, m in r["models"].items()}}


def cmd_export_onnx(args) -> dict:
    from tasks import export_onnx
    r = export_onnx.export_onnx(args.model_dir, args.out, opset=args.opset or export_onnx.OPSET, atol=args.atol,
                                tracking_uri=_tracking(args))
    return {"model_dir": str(args.model_dir), "onnx": r["onnx"], "parity_max_abs_diff": r["max_abs_diff"],
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
    return promote.promote(args.model_dir, args.pointer, version=_version(args, "version"),
                           registered_model=args.registered_model, tracking_uri=_tracking(args),
                           metrics_json=args.metrics)


def cmd_convert_tensorrt(args) -> dict:
    from tasks import convert_tensorrt as ct
    if args.skip:
        from tasks.errors import Skipped
        raise Skipped("skipped on request (--skip)")
    return ct.convert(args.model_dir, onnx_path=args.onnx, out=args.out, max_batch=args.max_batch, opt_batch=args.opt_batch,
                      fp16=args.fp16, atol=args.atol, require=args.require_gpu)


def cmd_publish(args) -> dict:
    from tasks.triton import repo as trepo
    blessing = rundir.require_blessed(args.model_dir)  # before anything is written
    exec_env = args.execution_env or env.get("SOCIAL_TONE_TRITON_EXECUTION_ENV") or \
        (sys.prefix if args.backend == "python" else None)
    r = trepo.publish(args.model_dir, args.repo, args.model, args.backend, model_file=args.model_file, keep=args.keep,
                      max_batch_size=args.max_batch, execution_env=exec_env, instances=args.instances, gpu=args.gpu)
    if "fallback" in r:
        log.warning("%s", r["fallback"])
    result = {"model": args.model, **r, "repo": str(args.repo),
              **({"forced": blessing["forced"] and not blessing["passed"]} if blessing else {})}
    record = args.record or rundir.RunPaths.published_of(args.model_dir)
    if record:
        from tasks.fsutil import atomic_write_json
        atomic_write_json(record, result)
        result["record"] = str(record)
    return result


def cmd_reload(args) -> dict:
    from tasks.triton import reload
    return reload.reload(args.repo, args.model, url=args.url, run_dir=args.model_dir, n_canary=args.canary_rows,
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
    return lineage.checkout(args.model_dir, args.dataset, args.out)


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
    """The parser, derived from tasks/commands.py's declarations; each runs cmd_<name> here."""
    from tasks.commands import COMMANDS, GROUPS
    p = argparse.ArgumentParser(prog="python -m tasks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for c in COMMANDS.values():
        group, _, name = c.name.rpartition(" ")
        if group and group not in groups:  # `data checkout`: a command of the `data` group
            groups[group] = sub.add_parser(group, help=GROUPS[group]).add_subparsers(dest=f"{group}_command",
                                                                                     required=True)
        s = (groups[group] if group else sub).add_parser(name, help=c.help)
        for a in c.args:
            a.add_to(s)
        s.set_defaults(func=globals()[c.handler])
    return p


def main(argv: list[str] | None = None) -> int:
    from tasks.commands import resolve
    args = resolve(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
    except (FileNotFoundError, ValueError) as e:  # tasks.contract.ContractError is a ValueError
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
