"""The owner of the scoring and monitoring layouts, and of the words their pages use.
Standard library only: the daily DAG builds its paths here at parse time.

  scoring/incoming/<day>/              a day's drop (its _SUCCESS marks it complete)
  scoring/predictions/<day>.parquet    what `tasks score` wrote for it
  monitoring/validation/<day>.json     the day's validation report
  monitoring/<day>/                    `tasks monitor`: report.json, input_stats.npz (the
                                       reference for later days), volumes.png, report.html
  monitoring/dashboard.html            the trends over every day (`tasks dashboard`)
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

REPORT, STATS, CHART, PAGE = "report.json", "input_stats.npz", "volumes.png", "report.html"
DASHBOARD, VALIDATION = "dashboard.html", "validation"
DAY_DIR = re.compile(r"\d{4}-\d{2}-\d{2}")
MODALITY = {"img": "Image embeddings", "txt": "Text embeddings", "predictions": "Predicted topic mix"}


def _day(day: dt.date | str) -> str:
    """A date, or a template such as "{{ ds }}" that Airflow renders to one."""
    return day.isoformat() if isinstance(day, dt.date) else str(day)


def drop_dir(incoming: Path, day: dt.date | str) -> Path: return Path(incoming) / _day(day)
def predictions_file(predictions: Path, day: dt.date | str) -> Path: return Path(predictions) / f"{_day(day)}.parquet"
def validation_report(monitoring: Path, day: dt.date | str) -> Path:
    return Path(monitoring) / VALIDATION / f"{_day(day)}.json"
def day_dir(monitoring: Path, day: dt.date | str) -> Path: return Path(monitoring) / _day(day)
def dashboard_file(monitoring: Path) -> Path: return Path(monitoring) / DASHBOARD


def days(monitoring: Path) -> list[Path]:
    """Every day's folder under the monitoring root, oldest first."""
    root = Path(monitoring)
    return sorted(p for p in root.iterdir() if p.is_dir() and DAY_DIR.fullmatch(p.name)) if root.is_dir() else []


def drift_in_words(drift: dict) -> list[str]:
    """One sentence per drift check, e.g. 'Text embeddings: DRIFT, mean shift 0.31 (limit 0.05)'."""
    out = []
    for m, v in drift.items():
        what, value = ("PSI", v["psi"]) if "psi" in v else ("mean shift", v["mean_shift"])
        verdict = "DRIFT" if v["flagged"] else "no drift"
        noise = f", sampling noise alone ~{v['noise']}" if "noise" in v else ""
        out.append(f"{MODALITY.get(m, m)}: {verdict}, {what} {value} (limit {v['threshold']}{noise})")
    return out
