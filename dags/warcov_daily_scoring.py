"""warcov_daily_scoring: each day's posts scored through Triton, then topic spikes and drift.

wait_for_day (scoring/incoming/<ds>/_SUCCESS; timeout -> the day is skipped)
  -> validate -> wait_for_model (a model is served: the champion pointer promote writes)
  -> score (Parquet: post_id, timestamp, model version, p_<topic>, topics)
  -> monitor (monitoring/<ds>/: report.json, volumes.png, report.html; alerts)
@daily with catchup: past days missing outputs run as a backfill. Re-running a day replaces
its outputs atomically.
"""
from __future__ import annotations

import os

import pendulum
from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk import Param, dag

from include import docker_task, settings

S = settings.load()
DAY = "{{ ds }}"
DROP = f"{S.scoring_incoming}/{DAY}"
PREDICTIONS = f"{S.predictions}/{DAY}.parquet"


@dag(
    schedule="@daily",
    start_date=pendulum.parse(os.environ.get("SOCIAL_TONE_SCORING_START", "2026-11-01"), tz="UTC"),
    catchup=True,
    max_active_runs=1,  # days in order: each day's monitor reads the days before it
    tags=["social-tone", "scoring", "monitoring"],
    default_args={"retries": 1},
    params={
        "window": Param(28, type="integer", minimum=1, description="trailing days to compare with"),
        "z": Param(4.0, type="number", description="robust z-score that makes a spike"),
        "min_count": Param(20, type="integer", minimum=0),
        "batch": Param(1024, type="integer", minimum=1, description="rows per Triton request"),
    },
    doc_md=__doc__,
)
def warcov_daily_scoring():
    wait = FileSensor(task_id="wait_for_day", filepath=f"{DROP}/_SUCCESS", fs_conn_id=S.fs_conn_id, deferrable=S.deferrable,
                      poke_interval=max(S.poke_interval, 1), soft_fail=True, retries=3,
                      retry_delay=pendulum.duration(seconds=15),
                      timeout=int(os.environ.get("SOCIAL_TONE_SCORING_WAIT", str(6 * 3600))))
    validate = docker_task.task(S, "validate", ["validate", DROP, "--kind", "unlabeled",
                                                "--report", f"{S.monitoring}/validation/{DAY}.json"],
                                writes=[S.monitoring], network=False, retries=0)
    score = docker_task.task(S, "score", ["score", DROP, "--out", PREDICTIONS, "--url", S.triton_grpc,
                                          "--repo", str(S.triton_repo), "--model", S.model_name,
                                          "--batch", "{{ params.batch }}"], writes=[S.predictions])
    monitor = docker_task.task(S, "monitor", [
        "monitor", "--predictions", PREDICTIONS, "--day", DAY, "--root", str(S.monitoring), "--drop", DROP,
        "--window", "{{ params.window }}", "--z", "{{ params.z }}", "--min-count", "{{ params.min_count }}"],
        writes=[S.monitoring, S.mlflow_dir], alerts=True)
    # score only once a model serves: promote writes the pointer after the version passed its
    # canary (the demo's first days wait here for its first model instead of failing in score)
    wait_model = FileSensor(task_id="wait_for_model", filepath=str(S.champion_pointer), fs_conn_id=S.fs_conn_id,
                            deferrable=S.deferrable, poke_interval=max(S.poke_interval, 1), retries=0,
                            timeout=int(os.environ.get("SOCIAL_TONE_MODEL_WAIT", str(24 * 3600))))
    wait >> validate >> wait_model >> score >> monitor


warcov_daily_scoring()
