"""Airflow-side tests: run in the Airflow venv (make test runs them with --confcutdir here).

A throwaway AIRFLOW_HOME with a SQLite metadata DB, the repo's dags/ folder, and a data root
under pytest's tmp dir. Settings are environment, as in production (include/settings.py).
"""
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOME = Path(tempfile.mkdtemp(prefix="social-tone-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME}/airflow.db",
    "AIRFLOW_CONN_FS_DEFAULT": '{"conn_type": "fs", "extra": {"path": "/"}}',
    "SOCIAL_TONE_DATA_ROOT": str(HOME / "data"),
    "SOCIAL_TONE_POKE_INTERVAL": "1",
    # Triton's model-repository API is closed behind it; the reload task gets it privately
    "SOCIAL_TONE_TRITON_ADMIN_SECRET": secrets.token_urlsafe(24),
})
(HOME / "data").mkdir()
sys.path.insert(0, str(REPO))
# the tasks venv (for starting Triton and checking predictions outside the containers)
TASKS_PY = os.environ.get("SOCIAL_TONE_TASKS_PYTHON", str(REPO / ".venv" / "bin" / "python"))


@pytest.fixture(scope="session")
def airflow_db():
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return HOME
