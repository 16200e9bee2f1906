"""`tasks dashboard`: one page over every monitored day, for the analyst.

Reads the daily reports `tasks monitor` leaves in the monitoring root (<root>/<YYYY-MM-DD>/
report.json) and writes one self-contained HTML file (Plotly, its JavaScript inlined: the page
works offline and behind the Airflow UI without a CDN):

- topic volumes per day (expected posts), every topic selectable from the legend, spikes
  marked, model changes and drift days shaded;
- one topic at a time against its usual range (the window's median and the level that would
  have been a spike), picked from a menu;
- the spike list (newest first, with z and usual volume), the drift checks in words, and the
  days with their post counts, model versions and links to the per-day reports.

The monitor task rebuilds it after each day; `python -m tasks dashboard` rebuilds it by hand.
Memory and time are linear in days x topics (a year of 50 topics is ~18k points).
"""
from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
from pathlib import Path

from tasks.fsutil import atomic_write_text
from tasks.monitoring import PAGE, REPORT, days, drift_in_words

log = logging.getLogger(__name__)
SHOWN = 8  # topics drawn at first (the busiest, plus every topic that ever spiked)


def load_reports(root: Path) -> list[dict]:
    """Every day's report under root, oldest first (unreadable ones are logged and left out)."""
    reports = []
    for d in days(root):
        try:
            r = json.loads((d / REPORT).read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            log.warning("dashboard: skipping %s: %s", d / REPORT, e)
            continue
        if isinstance(r, dict) and r.get("day") == d.name and isinstance(r.get("topics"), list):
            reports.append(r)
    return reports


def _series(reports: list[dict]) -> tuple[list[str], list[str], dict[str, list]]:
    """Days, topic names (first seen order) and per-topic lists aligned with the days (None
    where a day has no such topic, e.g. before a model with new labels)."""
    days = [r["day"] for r in reports]
    names: dict[str, None] = {}
    for r in reports:
        names.update(dict.fromkeys(t["topic"] for t in r["topics"]))
    cols = {k: {n: [None] * len(days) for n in names} for k in ("expected", "share", "median", "level", "z")}
    for i, r in enumerate(reports):
        for t in r["topics"]:
            cols["expected"][t["topic"]][i] = t["expected"]
            cols["share"][t["topic"]][i] = t.get("share")
            cols["median"][t["topic"]][i] = t.get("expected_count")
            cols["level"][t["topic"]][i] = t.get("spike_level")
            cols["z"][t["topic"]][i] = t.get("z")
    return days, list(names), cols


def _spikes(reports: list[dict]) -> list[dict]:
    out = []
    for r in reports:
        by_name = {t["topic"]: t for t in r["topics"]}
        for name in r.get("spikes", []):
            t = by_name.get(name, {})
            out.append({"day": r["day"], "topic": name, "expected": t.get("expected"),
                        "usual": t.get("expected_count"), "z": t.get("z"), "share": t.get("share")})
    return out


def _version_changes(reports: list[dict]) -> list[tuple[str, str]]:
    changes, last = [], None
    for r in reports:
        v = ", ".join(r.get("model_versions", [])) or "?"
        if v != last:
            changes.append((r["day"], v))
            last = v
    return changes


def figures(reports: list[dict]):
    import plotly.graph_objects as go
    days, names, cols = _series(reports)
    spikes = _spikes(reports)
    spiked = list(dict.fromkeys(s["topic"] for s in spikes))
    totals = {n: sum(v or 0 for v in cols["expected"][n]) for n in names}
    shown = set(spiked) | set(sorted(names, key=lambda n: -totals[n])[:SHOWN])

    vol = go.Figure()
    for n in names:
        vol.add_trace(go.Scatter(x=days, y=cols["expected"][n], name=n, mode="lines+markers",
                                 visible=True if n in shown else "legendonly",
                                 line={"width": 2.5 if n in spiked else 1.2}, customdata=cols["share"][n],
                                 hovertemplate=f"{html.escape(n)}<br>%{{x}}: %{{y:.0f}} posts "
                                               f"(%{{customdata:.1%}} of the day)<extra></extra>"))
    vol.add_trace(go.Scatter(
        x=[s["day"] for s in spikes], y=[s["expected"] for s in spikes], name="spikes", mode="markers+text",
        text=[s["topic"] for s in spikes], textposition="top center",
        marker={"size": 16, "symbol": "circle-open", "color": "red", "line": {"width": 3}},
        customdata=[[s["z"], s["usual"]] for s in spikes],
        hovertemplate="SPIKE %{text}<br>%{x}: %{y:.0f} posts (usual %{customdata[1]:.0f}), "
                      "z=%{customdata[0]}<extra></extra>"))
    for r in reports:  # drift days shaded
        flagged = [m for m, v in r.get("drift", {}).items() if v.get("flagged")]
        if flagged:
            vol.add_vrect(x0=_shift(r["day"], -0.5), x1=_shift(r["day"], 0.5), fillcolor="orange", opacity=0.2,
                          line_width=0, annotation_text="drift: " + ", ".join(flagged),
                          annotation_position="top left")
    for day, v in _version_changes(reports):
        vol.add_vline(x=_shift(day, -0.5), line_dash="dot", line_color="gray")
        vol.add_annotation(x=_shift(day, -0.5), y=1.0, yref="paper", text=f"model {_v(v)}", showarrow=False,
                           xanchor="left", yanchor="bottom", font={"size": 10, "color": "gray"})
    vol.update_layout(title="Topic volumes per day (expected posts; click a name in the legend to show or hide it)",
                      height=520, hovermode="closest", xaxis={"rangeslider": {"visible": True}, "type": "date"},
                      yaxis={"title": "expected posts (sum of probabilities)"}, legend={"font": {"size": 10}},
                      margin={"t": 70})

    focus = go.Figure()
    start = spiked[0] if spiked else (max(totals, key=totals.get) if names else None)
    for n in names:
        on = n == start
        focus.add_trace(go.Scatter(x=days, y=cols["median"][n], name="usual (window median)", visible=on,
                                   line={"color": "gray", "dash": "dash"}))
        focus.add_trace(go.Scatter(x=days, y=cols["level"][n], name="spike level", visible=on, fill="tonexty",
                                   fillcolor="rgba(120,120,120,0.15)", line={"color": "rgba(200,0,0,0.5)", "dash": "dot"}))
        focus.add_trace(go.Scatter(x=days, y=cols["expected"][n], name=n, visible=on, mode="lines+markers",
                                   line={"color": "#1f77b4", "width": 2.5}, customdata=cols["z"][n],
                                   hovertemplate="%{x}: %{y:.0f} posts, z=%{customdata}<extra></extra>"))
    buttons = [{"label": n, "method": "update",
                "args": [{"visible": [m == n for m in names for _ in range(3)]}, {"title": f"{n} against its usual range"}]}
               for n in names]
    focus.update_layout(title=f"{start} against its usual range" if start else "no topics yet", height=420,
                        updatemenus=[{"buttons": buttons, "active": names.index(start) if start else 0, "x": 1.0, "xanchor": "right", "y": 1.18, "yanchor": "top"}],
                        xaxis={"type": "date"}, yaxis={"title": "expected posts"}, margin={"t": 90})

    posts = go.Figure(go.Bar(x=days, y=[r["rows"] for r in reports], name="posts",
                             text=[_v(", ".join(r.get("model_versions", []))) for r in reports],
                             hovertemplate="%{x}: %{y} posts, model %{text}<extra></extra>"))
    posts.update_layout(title="Posts scored per day (and the model version that scored them)", height=300,
                        xaxis={"type": "date"}, margin={"t": 50})
    return vol, focus, posts


def _v(version: str) -> str:
    return f"v{version}" if version[:1].isdigit() else version


def _shift(day: str, days: float) -> str:
    return (dt.datetime.fromisoformat(day) + dt.timedelta(days=days)).isoformat()


def _table(head: list[str], rows: list[list[str]], cls: str) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{th}</tr>{body}</table>'


def render(reports: list[dict], link_to_day=lambda day: f"{day}/{PAGE}") -> str:
    import plotly.io as pio
    if not reports:
        charts = "<p>No monitored days yet: the daily DAG writes one report per scored day.</p>"
    else:
        figs = figures(reports)
        charts = "".join(pio.to_html(f, include_plotlyjs=(i == 0), full_html=False, config={"displaylogo": False})
                         for i, f in enumerate(figs))
    spikes = sorted(_spikes(reports), key=lambda s: (s["day"], s["z"] or 0), reverse=True)
    spike_rows = [[html.escape(s["day"]), html.escape(s["topic"]), f"{s['expected']:.0f}",
                   "" if s["usual"] is None else f"{s['usual']:.0f}", str(s["z"])] for s in spikes]
    drift_rows = [[html.escape(r["day"]), html.escape(line)] for r in reversed(reports)
                  for line in drift_in_words({m: v for m, v in r.get("drift", {}).items() if v.get("flagged")})]
    day_rows = [[f'<a href="{html.escape(link_to_day(r["day"]))}">{html.escape(r["day"])}</a>', str(r["rows"]),
                 html.escape(", ".join(r.get("model_versions", []))), html.escape(r.get("status", "")),
                 html.escape(", ".join(r.get("spikes", [])) or "-")] for r in reversed(reports)]
    span = (f"{reports[0]['day']} to {reports[-1]['day']}, {len(reports)} day{'s' if len(reports) > 1 else ''}"
            if reports else "no days yet")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>social-tone topic trends</title>
<style>body{{font:14px sans-serif;margin:1.5em}} table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}} .spikes tr:nth-child(n+2){{background:#fee}}</style>
</head><body>
<h1>social-tone: topic trends</h1>
<p>{html.escape(span)}. A <b>spike</b> is a day when a topic's share of posts is far above its usual share over the
trailing window (robust z-score); <b>drift</b> means the day's inputs or predicted topic mix moved away from the window.
Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.</p>
<h2 id="spikes">Spikes ({len(spikes)})</h2>
{f"<p><small>{html.escape(reports[-1]['alarm_trust'])}</small></p>" if reports and reports[-1].get("alarm_trust") else ""}
{_table(["day", "topic", "posts (expected)", "usual", "z"], spike_rows, "spikes") if spikes else "<p>none so far</p>"}
{charts}
<h2 id="drift">Drift flags ({len(drift_rows)})</h2>
{_table(["day", "check"], drift_rows, "drift") if drift_rows else "<p>none so far</p>"}
<h2 id="days">Days</h2>
{_table(["day (report)", "posts", "model version", "status", "spikes"], day_rows, "days")}
</body></html>
"""


def build(root: Path, out: Path) -> dict:
    """Rebuild the dashboard at `out` from every report under `root` (atomic replace)."""
    reports = load_reports(root)
    rel = os.path.relpath(Path(root), Path(out).parent)
    atomic_write_text(out, render(reports, lambda day: f"{day}/{PAGE}" if rel == "." else f"{rel}/{day}/{PAGE}"))
    return {"dashboard": str(out), "days": len(reports), "spikes": sum(len(r.get("spikes", [])) for r in reports)}
