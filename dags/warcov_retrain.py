"""warcov_retrain: a new embedding drop in the inbox becomes a served, promoted model.

wait_for_drop -> claim -> validate -> route -> quarantine            (bad drop: run ends here)
                                          \\-> ingest -> train -> evaluate -> gate
              -> export_onnx -> convert_tensorrt -> publish -> reload -> promote -> archive
Heavy steps run `python -m tasks ...` in the task image (include/docker_task.py); see
docs/architecture.md for paths and exit codes.
"""
from __future__ import annotations

import pendulum
from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk import Asset, Param, dag, task

from include import docker_task, drops, settings

S = settings.load()
CHAMPION = Asset(name="social_tone_champion", uri="file:///social-tone/champion")
C = "ti.xcom_pull(task_ids='claim')"  # the claimed drop's paths, for templates


def x(expr: str) -> str:
    return "{{ " + expr + " }}"


@dag(
    schedule="@continuous",  # one run at a time, each waiting (deferred) for the next drop
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["social-tone", "training"],
    default_args={"retries": 0},
    params={
        "epochs": Param(20, type="integer", minimum=1, description="max epochs (early stopping decides)"),
        "lr": Param(3e-3, type="number", exclusiveMinimum=0),
        "batch_size": Param(512, type="integer", minimum=1),
        "hidden": Param(256, type="integer", minimum=1),
        "force_promote": Param(False, type="boolean", description="serve the candidate even if the gate says no"),
        "skip_tensorrt": Param(False, type="boolean"),
        "tensorrt_fp16": Param(False, type="boolean", description="FP16 TensorRT plan (GPU hosts; looser canary)"),
        "gate_tolerance": Param(S.gate_tolerance, type="number", minimum=0),
        "gate_floor": Param(S.gate_floor, type="number", minimum=0),
    },
    doc_md=__doc__,
)
def warcov_retrain():
    wait = FileSensor(task_id="wait_for_drop", filepath=str(S.inbox / "*" / drops.MARKER), fs_conn_id=S.fs_conn_id,
                      deferrable=S.deferrable, poke_interval=max(S.poke_interval, 1), timeout=24 * 3600,
                      retries=3, retry_delay=pendulum.duration(seconds=15))  # e.g. the API server still starting

    @task
    def claim() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException
        claimed = drops.claim(S)
        if claimed is None:
            raise AirflowSkipException("no complete drop left in the inbox")
        return claimed

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def not_duplicate(claimed: dict) -> bool:
        return "duplicate_of" not in claimed

    validate = docker_task.task(S, "validate", ["validate", x(C + "['drop']"), "--kind", "labeled", "--report",
                                                x(C + "['report']"), "--schema", str(S.dataset / "schema.json"),
                                                "--no-fail"], writes=[S.runs], network=False)

    @task.branch
    def route(claimed: dict) -> str:
        return "ingest" if drops.validation_ok(claimed) else "quarantine"

    @task
    def quarantine(claimed: dict) -> str:
        return drops.quarantine(S, claimed)

    ingest = docker_task.task(S, "ingest", ["ingest", x(C + "['drop']"), "--validated", x(C + "['report']"),
                                            "--dataset", str(S.dataset),
                                            "--remote", str(S.dvc_remote)],
                              writes=[S.dataset, S.dvc_remote], network=False, retries=1)
    train = docker_task.task(S, "train", [
        "train", "--data", str(S.dataset / "drops"), "--out", x(C + "['run']"), "--run-name", x(C + "['key']"),
        "--epochs", x("params.epochs"), "--lr", x("params.lr"), "--batch-size", x("params.batch_size"),
        "--hidden", x("params.hidden")], writes=[S.runs, S.mlflow_dir], retries=1)
    evaluate = docker_task.task(S, "evaluate", [
        "evaluate", "--run", x(C + "['run']"), "--data", str(S.dataset / "drops"), "--out", x(C + "['eval']"),
        "--champion-pointer", str(S.champion_pointer)], writes=[S.runs, S.mlflow_dir], retries=1)
    gate = docker_task.task(S, "gate", [
        "gate", "--metrics", x(C + "['eval']") + "/metrics.json", "--tolerance", x("params.gate_tolerance"),
        "--floor", x("params.gate_floor"), "--force", x("params.force_promote")],
        writes=[S.runs], network=False, skip_on_exit_code=docker_task.EXIT_SKIPPED)
    export = docker_task.task(S, "export_onnx", ["export-onnx", "--run", x(C + "['run']"),
                                                 "--data", str(S.dataset / "drops")], writes=[S.runs, S.mlflow_dir])
    tensorrt = docker_task.task(S, "convert_tensorrt", [
        "convert-tensorrt", "--run", x(C + "['run']"), "--data", str(S.dataset / "drops"),
        "--skip", x("params.skip_tensorrt"), "--fp16", x("params.tensorrt_fp16")],
        writes=[S.runs], network=False, gpu=True, skip_on_exit_code=docker_task.EXIT_SKIPPED)
    publish = docker_task.task(S, "publish", [
        "publish", "--run", x(C + "['run']"), "--repo", str(S.triton_repo), "--model", S.model_name,
        "--backend", S.triton_backend, "--gpu", str(S.gpu), "--record", x(C + "['work']") + "/published.json"],
        writes=[S.runs, S.triton_repo], network=False, trigger_rule="none_failed_min_one_success")
    reload = docker_task.task(S, "reload", [
        "reload", "--run", x(C + "['run']"), "--repo", str(S.triton_repo), "--model", S.model_name,
        "--url", S.triton_grpc, "--expect-version-file", x(C + "['work']") + "/published.json",
        "--canary-data", str(S.dataset / "drops")], writes=[S.triton_repo], triton_admin=True, retries=2)
    promote = docker_task.task(S, "promote", [
        "promote", "--run", x(C + "['run']"), "--pointer", str(S.champion_pointer),
        "--version-file", x(C + "['work']") + "/published.json", "--metrics", x(C + "['eval']") + "/metrics.json"],
        writes=[S.state, S.mlflow_dir], outlets=[CHAMPION], retries=1)

    # after evaluate (not blessed) or promote (served); never on the quarantine or duplicate paths,
    # and not after a failure: then the drop stays in processing/ for a retry
    @task(trigger_rule="none_failed_min_one_success")
    def archive(ti=None) -> str:
        return drops.archive(S, ti.xcom_pull(task_ids="claim"))

    claimed = claim()
    routed = route(claimed)
    wait >> claimed >> not_duplicate(claimed) >> validate >> routed
    routed >> quarantine(claimed)
    routed >> ingest >> train >> evaluate >> gate >> export >> tensorrt >> publish >> reload >> promote
    export >> publish  # publish runs when TensorRT is skipped (no GPU), not when export was
    [evaluate, promote] >> archive()


warcov_retrain()
