"""The spike detector's parameters and their defaults (standard library only: the CLI's and the
daily DAG's form read them at parse time; tasks/detect.py does the detecting)."""
from __future__ import annotations

import dataclasses
import datetime as dt


@dataclasses.dataclass(frozen=True)
class SpikeParams:
    z: float = 4.0          # alarm when z >= this
    window: int = 28        # trailing points in the baseline
    min_history: int = 7    # fewer earlier points: warming up, no alarm
    min_count: float = 20   # an alarm needs at least this many (expected) posts
    smooth: int = 1         # y = mean of the last `smooth` points
    cooldown: int = 0       # points after an alarm without a new one (their score is 0)


DAILY = SpikeParams()  # the daily monitor: one point per day, a topic's share of the day's posts
# `tasks detect` on a volume series, in time so that any sampling rate means the same: 3 days of
# baseline, a 2-hour mean, one alarm a day at most, none in the first day. Tuned on NAB realTweets
# and the artificial series (5-minute counts: 864, 24, 288 and 288 points).
SERIES_Z = 5.0
SERIES_SPANS = {"window": dt.timedelta(days=3), "smooth": dt.timedelta(hours=2),
                "cooldown": dt.timedelta(days=1), "min_history": dt.timedelta(days=1)}


def series_params(step: dt.timedelta, z: float = SERIES_Z) -> SpikeParams:
    """SERIES_SPANS in points of a series sampled every `step`."""
    pts = {k: max(1, round(span / step)) for k, span in SERIES_SPANS.items()}
    return SpikeParams(z=z, min_count=0, window=max(pts["window"], 10), min_history=max(pts["min_history"], 5),
                       smooth=pts["smooth"], cooldown=pts["cooldown"])
