"""warcov_daily_scoring: each day's posts scored through Triton, then topic spikes and drift.

wait_for_day (scoring/incoming/<ds>/_SUCCESS, until the day's end + SOCIAL_TONE_SCORING_WAIT;
              a past day without a drop is skipped at once, with the reason in its log)
  -> validate -> wait_for_model (a model is served: the champion pointer promote writes)
  -> score (Parquet: post_id, timestamp, model version, p_<topic>, topics)
  -> monitor (monitoring/<ds>/: report.json, volumes.png, report.html; the trends dashboard
     over every day, "Topic trends" in the Airflow UI; alerts)
@daily with catchup: past days missing outputs run as a backfill. Several days run at once, so
today's run waiting for its drop never holds back a backfilled or cleared day; only monitor
goes day by day (depends_on_past: each day's window reads the days before it). Re-running a
day replaces its outputs atomically.
"""
from __future__ import annotations

import pendulum
from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk import Param, dag

from include import docker_task, settings
from include.day_sensor import DaySensor
from include.notify import RunFailed
from tasks import layout as drop_layout, monitoring as layout  # stdlib only
from tasks.commands import argv, default  # stdlib only: the commands' declarations

S = settings.load()
DAY = "{{ ds }}"
DROP = str(layout.drop_dir(S.scoring_incoming, DAY))
PREDICTIONS = str(layout.predictions_file(S.predictions, DAY))


@dag(
    schedule="@daily",
    start_date=pendulum.parse(S.scoring_start, tz="UTC"),
    catchup=True,
    max_active_runs=4,  # today's run may wait hours for its drop: other days go past it
    tags=["social-tone", "scoring", "monitoring"],
    on_failure_callback=RunFailed(S),
    default_args={"retries": 1},
    params={
        # the defaults `tasks monitor` and `tasks score` declare (tasks/commands.py)
        "window": Param(default("monitor", "window"), type="integer", minimum=1,
                        description="trailing days to compare with"),
        "z": Param(default("monitor", "z"), type="number", description="robust z-score that makes a spike"),
        "min_count": Param(int(default("monitor", "min_count")), type="integer", minimum=0,
                           description="minimum expected posts for a spike"),
        "batch": Param(default("score", "batch"), type="integer", minimum=1, description="rows per Triton request"),
    },
    doc_md=__doc__,
)
def warcov_daily_scoring():
    wait = DaySensor(task_id="wait_for_day", filepath=f"{DROP}/{drop_layout.MARKER}", fs_conn_id=S.fs_conn_id,
                     deferrable=S.deferrable, poke_interval=max(S.poke_interval, 1), retries=3,
                     retry_delay=pendulum.duration(seconds=15), grace=pendulum.duration(seconds=S.scoring_grace_seconds))
    validate = docker_task.task(S, "validate", argv("validate", DROP, kind="unlabeled",
                                                    report=layout.validation_report(S.monitoring, DAY)),
                                writes=[S.monitoring], network=False, retries=0)
    score = docker_task.task(S, "score", argv("score", DROP, out=PREDICTIONS, url=S.triton_grpc, repo=S.triton_repo,
                                              model=S.model_name, batch="{{ params.batch }}"),
                             writes=[S.predictions])
    monitor = docker_task.task(S, "monitor", argv(
        "monitor", predictions=PREDICTIONS, day=DAY, root=S.monitoring, drop=DROP, window="{{ params.window }}",
        z="{{ params.z }}", min_count="{{ params.min_count }}", dashboard=S.dashboard),
        writes=[S.monitoring, S.mlflow_dir], alerts=True, depends_on_past=True)
    # score only once a model serves: promote writes the pointer after the version passed its
    # canary (the demo's first days wait here for its first model instead of failing in score)
    wait_model = FileSensor(task_id="wait_for_model", filepath=str(S.champion_pointer), fs_conn_id=S.fs_conn_id,
                            deferrable=S.deferrable, poke_interval=max(S.poke_interval, 1), retries=0,
                            timeout=S.model_wait_seconds)
    wait >> validate >> wait_model >> score >> monitor


warcov_daily_scoring()
