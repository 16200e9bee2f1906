#!/usr/bin/env bash
# Before the first `docker-compose up`: write .env (mode 0600) from .env.example with every
# secret generated, the files that carry secrets into the services under
# $SOCIAL_TONE_SECRETS_DIR (mode 0700, outside the data dir that task containers mount), and the
# data dir owned by the services' user (50000). Safe to run again: existing values are kept,
# and only placeholders ("change-me", empty secrets) are replaced. Prints where everything is.
#   scripts/compose-init.sh [ENV_FILE]      (default: .env)
set -euo pipefail
cd "$(dirname "$0")/.."
ENV=${1:-.env}
umask 077
[ -f "$ENV" ] || cp .env.example "$ENV"
chmod 600 "$ENV"
python3 - "$ENV" <<'PY'
import base64, json, os, re, secrets, sys
from pathlib import Path

env = Path(sys.argv[1])
lines = env.read_text().splitlines()
values = {}
for line in lines:
    m = re.match(r"^([A-Z0-9_]+)=(\S*)", line)
    if m:
        values[m.group(1)] = m.group(2)
token = lambda: secrets.token_urlsafe(32)  # noqa: E731
generate = {
    "POSTGRES_PASSWORD": token,
    "MLFLOW_DB_PASSWORD": token,
    "REDIS_PASSWORD": token,
    "AIRFLOW__CORE__FERNET_KEY": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "AIRFLOW__API_AUTH__JWT_SECRET": token,
    "AIRFLOW__API__SECRET_KEY": token,
    "AIRFLOW_ADMIN_PASSWORD": token,
    "SOCIAL_TONE_TRITON_ADMIN_SECRET": token,
    "MLFLOW_TRACKING_PASSWORD": token,
    "MLFLOW_FLASK_SERVER_SECRET_KEY": token,
}
placeholder = lambda v: v in ("", "change-me", "admin", "password1234")  # noqa: E731
out, seen = [], set()
for line in lines:
    m = re.match(r"^([A-Z0-9_]+)=(\S*)(.*)$", line)
    if m and m.group(1) in generate:
        key = m.group(1)
        seen.add(key)
        if placeholder(m.group(2)):
            values[key] = generate[key]()
            line = f"{key}={values[key]}{m.group(3)}"
    out.append(line)
for key in generate.keys() - seen:
    values[key] = generate[key]()
    out.append(f"{key}={values[key]}")
env.write_text("\n".join(out) + "\n")

data = Path(values.get("SOCIAL_TONE_DATA_DIR") or "/srv/social-tone/data")
sec = Path(values.get("SOCIAL_TONE_SECRETS_DIR") or "/srv/social-tone/secrets")
SERVICE_UID = 50000  # Airflow's, MLflow's, Triton's and the task containers' user in compose
# the data dir: Airflow moves drops in it, tasks and MLflow write it (all as SERVICE_UID)
for sub in ("inbox", "mlflow/artifacts", "triton", "scoring/incoming"):
    (data / sub).mkdir(parents=True, exist_ok=True)
sec.mkdir(parents=True, exist_ok=True)
os.chmod(sec, 0o700)
# Airflow's simple auth manager reads the admin's password from this file (never admin:admin)
(sec / "airflow-passwords.json").write_text(json.dumps({"admin": values["AIRFLOW_ADMIN_PASSWORD"]}))
# MLflow's basic-auth app: its admin is the account the tasks log with; its users in Postgres
user = values.get("MLFLOW_TRACKING_USERNAME") or "social-tone"
(sec / "mlflow-auth.ini").write_text(
    "[mlflow]\ndefault_permission = READ\n"
    f"database_uri = postgresql+psycopg2://mlflow:{values['MLFLOW_DB_PASSWORD']}@postgres/mlflow_auth\n"
    f"admin_username = {user}\nadmin_password = {values['MLFLOW_TRACKING_PASSWORD']}\n"
    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
try:  # each secret file readable by the services' user only; the data dir theirs
    for f in (sec / "airflow-passwords.json", sec / "mlflow-auth.ini"):
        os.chown(f, SERVICE_UID, 0)
        os.chmod(f, 0o600)
    made = {data} | {data / sub for sub in ("inbox", "mlflow", "mlflow/artifacts", "triton", "scoring",
                                            "scoring/incoming")}
    for d in made:
        if d.stat().st_uid == 0:
            os.chown(d, SERVICE_UID, 0)
except PermissionError:  # not root: the secrets stay 0600 (never readable by other local users), so the
    # services (uid 50000) cannot read them yet: stop here with the one command that finishes the job
    for f in (sec / "airflow-passwords.json", sec / "mlflow-auth.ini"):
        os.chmod(f, 0o600)
    print(f"error: not root: {sec}/* are mode 0600 and owned by you, so the services (uid {SERVICE_UID}) cannot "
          f"read them, and {data} is not theirs. Run this script as root (sudo), or as root: "
          f"chown {SERVICE_UID} {sec}/* && chown -R {SERVICE_UID} {data}", file=sys.stderr)
    sys.exit(1)
print(f"secrets generated in {env} (mode 0600) and {sec}/ (mode 0700); data dir {data}")
print(f"Airflow UI login: admin / the AIRFLOW_ADMIN_PASSWORD in {env}")
print(f"MLflow login: {user} / the MLFLOW_TRACKING_PASSWORD in {env}")
PY
