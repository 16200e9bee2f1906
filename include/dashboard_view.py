"""The topic-trends dashboard inside the Airflow UI (plugins/social_tone.py registers it).

A small FastAPI app mounted on Airflow's own API server at /social-tone: it serves the
dashboard the daily DAG's monitor task writes (Settings.dashboard) and the per-day reports next
to it, read-only. Nothing else listens: it is on the API server's address (127.0.0.1 in the
demo and in compose), and it answers only users Airflow has logged in who may read the daily
DAG (the UI's session cookie or a Bearer token), like the DAG's own pages.
"""
from __future__ import annotations

import os
import re
import stat

from include import settings
from tasks import monitoring  # stdlib only: the monitoring layout

URL_PREFIX = "/social-tone"
DAILY_DAG = "warcov_daily_scoring"
DAY = monitoring.DAY_DIR  # monitoring/<YYYY-MM-DD>/
FILE = re.compile(r"[A-Za-z0-9_-]+\.(html|png|json)")
TYPES = {"html": "text/html; charset=utf-8", "png": "image/png", "json": "application/json"}
MAX_BYTES = 64 << 20
EMPTY = """<!doctype html><meta charset="utf-8"><title>social-tone topic trends</title>
<body style="font:14px sans-serif;margin:2em"><h1>social-tone: topic trends</h1>
<p>No dashboard yet: the daily DAG (warcov_daily_scoring) writes it after it has scored and
monitored its first day.</p></body>"""


def _read(path) -> bytes | None:
    """A regular file's bytes, never through a symlink (the data root is shared with tasks)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            return None
        return f.read(MAX_BYTES)


def app():
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import RedirectResponse, Response

    from airflow.api_fastapi.core_api.security import requires_access_dag

    s = settings.load()
    api = FastAPI(title="social-tone topic trends", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(requires_access_dag("GET", param_dag_id=DAILY_DAG))])
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

    @api.get("/")
    def root():
        return RedirectResponse(s.dashboard.name)  # relative: works behind a proxy prefix too

    @api.get("/" + s.dashboard.name)
    def dashboard():
        body = _read(s.dashboard)
        return Response(EMPTY if body is None else body, media_type=TYPES["html"], headers=headers)

    @api.get("/{day}/{name}")
    def day_file(day: str, name: str):
        m = FILE.fullmatch(name)
        if not DAY.fullmatch(day) or m is None:
            raise HTTPException(404)
        body = _read(s.monitoring / day / name)
        if body is None:
            raise HTTPException(404, f"no {name} for {day}")
        return Response(body, media_type=TYPES[m.group(1)], headers=headers)

    return api
