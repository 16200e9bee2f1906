"""DaySensor: wait for one day's scoring drop until that day's deadline, not for a fixed time.

The deadline is the end of the day (ds + 1 day, UTC) plus a grace period
(Settings.scoring_grace_seconds, SOCIAL_TONE_SCORING_WAIT). Today's run waits, deferred in the triggerer, until its drop lands or
the deadline passes; a past day whose drop never came (a backfill, a cleared run) is skipped at
once with the reason in its log, instead of holding a run slot for hours.
"""
from __future__ import annotations

import datetime as dt

from airflow.providers.standard.sensors.filesystem import FileSensor


class DaySensor(FileSensor):
    def __init__(self, *, grace: dt.timedelta, **kwargs):
        super().__init__(soft_fail=True, **kwargs)  # a day that never comes is skipped, not failed
        self.grace = grace

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowSkipException
        if self.poke(context):
            return None
        day = dt.date.fromisoformat(context["ds"])
        deadline = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc) + dt.timedelta(days=1) + self.grace
        left = (deadline - dt.datetime.now(dt.timezone.utc)).total_seconds()
        if left <= 0:
            raise AirflowSkipException(f"no scoring drop for {day}: {self.path} does not exist and the day's "
                                       f"deadline ({deadline:%Y-%m-%d %H:%M} UTC: end of day + {self.grace}) has passed")
        self.log.info("waiting for %s until %s UTC (%.0f s)", self.path, f"{deadline:%Y-%m-%d %H:%M}", left)
        self.timeout = left
        return super().execute(context)
