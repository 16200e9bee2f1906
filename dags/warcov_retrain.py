"""warcov_retrain: a new embedding drop in the inbox becomes a served, promoted model.

wait_for_drop -> claim -> validate -> route -> quarantine            (bad drop: run ends here)
                                          \\-> ingest -> [model] train -> evaluate -> gate
              -> [serving] export_onnx -> convert_tensorrt -> publish -> reload -> promote -> archive
Heavy steps run `python -m tasks ...` in the task image (include/docker_task.py); the model and
serving steps are shared with warcov_retrain_now (include/training.py). See
docs/architecture.md for paths and exit codes.
"""
from __future__ import annotations

import pendulum
from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk import dag, task

from include import docker_task, drops, settings, training
from tasks.commands import argv  # stdlib only: the commands' declarations

S = settings.load()


@dag(
    schedule="@continuous",  # one run at a time, each waiting (deferred) for the next drop
    doc_md=__doc__,
    **training.dag_kwargs(S),
)
def warcov_retrain():
    wait = FileSensor(task_id="wait_for_drop", filepath=str(S.inbox / "*" / drops.MARKER), fs_conn_id=S.fs_conn_id,
                      deferrable=S.deferrable, poke_interval=max(S.poke_interval, 1), timeout=24 * 3600,
                      retries=3, retry_delay=pendulum.duration(seconds=15))  # e.g. the API server still starting

    @task(multiple_outputs=True)  # one XCom per path: the steps take them as XComArgs
    def claim() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException
        claimed = drops.claim(S)
        if claimed is None:
            raise AirflowSkipException("no complete drop left in the inbox")
        return claimed

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def not_duplicate(claimed: dict) -> bool:
        return "duplicate_of" not in claimed

    claimed = claim()
    # validation of untrusted input sees the drop (processing/ holds it alone) and its run dir
    validate = docker_task.task(S, "validate", argv("validate", claimed["drop"], kind="labeled",
                                                    report=claimed["report"], schema=claimed["schema"], no_fail=True),
                                reads=[S.processing], writes=[S.runs], network=False)

    @task.branch
    def route(claimed: dict) -> str:
        return "ingest" if drops.validation_ok(claimed) else "quarantine"

    @task
    def quarantine(claimed: dict) -> str:
        return drops.quarantine(S, claimed)

    ingest = docker_task.task(S, "ingest", argv("ingest", claimed["drop"], validated=claimed["report"],
                                                dataset=S.dataset, remote=S.dvc_remote),
                              writes=[S.dataset, S.dvc_remote], network=False, retries=1)
    step = training.steps(S, claimed)

    # after evaluate (not blessed) or promote (served); never on the quarantine or duplicate paths,
    # and not after a failure: then the drop stays in processing/ for a retry. It pulls the
    # claim itself: an XComArg would make claim an upstream whose success triggers it anyway.
    @task(trigger_rule="none_failed_min_one_success")
    def archive(ti=None) -> str:
        return drops.archive(S, ti.xcom_pull(task_ids="claim"))

    routed = route(claimed)
    wait >> claimed >> not_duplicate(claimed) >> validate >> routed
    routed >> quarantine(claimed)
    routed >> ingest >> step["train"]
    [step["evaluate"], step["promote"]] >> archive()


warcov_retrain()
