"""Run-failure alerts: the same webhook as the monitor's spike alerts (Settings.alert_webhook),
so one setting sends everything an operator or analyst must see.

Used as the DAGs' on_failure_callback. With no webhook configured it only logs. The payload
names the DAG, the run, the failed tasks and where to look; it carries no secrets.
"""
from __future__ import annotations

import json
import logging
import urllib.request

from airflow.sdk import BaseNotifier

from include.settings import Settings

log = logging.getLogger(__name__)


class RunFailed(BaseNotifier):
    def __init__(self, settings: Settings):
        super().__init__()
        self.settings = settings

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing to render: this notifier has no templated fields. (Rendering needs the DAG's
        template env, which the SerializedDAG a dag.test run hands DAG callbacks lacks.)"""

    def payload(self, context) -> dict:
        dr = context.get("dag_run")
        failed = []
        if dr is not None:
            try:
                failed = sorted(ti.task_id for ti in dr.get_task_instances(state=["failed"]))
            except Exception:  # noqa: BLE001 (a partial alert beats none)
                failed = []
        ti = context.get("ti") or context.get("task_instance")  # the failed task that ended the run
        if not failed and getattr(ti, "task_id", None):  # the SDK's DagRun (dag-processor, dag.test) lists no TIs
            failed = [ti.task_id]
        dag_id = getattr(context.get("dag"), "dag_id", None) or getattr(dr, "dag_id", None)
        return {"event": "run_failed", "dag_id": dag_id, "run_id": getattr(dr, "run_id", None),
                "failed_tasks": failed, "reason": str(context.get("reason") or context.get("exception") or ""),
                "hint": "open the run in the Airflow UI; failed tasks' logs say why"}

    def notify(self, context) -> None:
        body = self.payload(context)
        log.error("run failed: %s", body)
        url = self.settings.alert_webhook
        if not url:
            return
        try:
            req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).close()
        except OSError as e:
            log.error("alert webhook failed: %s", e)
