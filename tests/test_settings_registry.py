"""One settings registry (tasks/env.py): every SOCIAL_TONE_* variable is declared there once, with
its default; Python reads them only through it, and .env.example and docker-compose.yaml agree
with it."""
import re
from pathlib import Path

import yaml

from tasks import env

REPO = Path(__file__).resolve().parent.parent
EXEMPT = {"tasks/env.py"}
READ = re.compile(r'os\.(?:environ\.get|getenv)\(\s*["\'](SOCIAL_TONE_\w+)|os\.environ\[["\'](SOCIAL_TONE_\w+)["\']\](?!\s*=[^=])')


def python_files():
    for top in ("dags", "include", "tasks", "plugins", "bench", "scripts", "docker"):
        yield from (p for p in (REPO / top).rglob("*.py") if str(p.relative_to(REPO)) not in EXEMPT)


def test_no_social_tone_variable_is_read_outside_the_registry():
    readers = {str(p.relative_to(REPO)): READ.findall(p.read_text()) for p in python_files()}
    assert {k: v for k, v in readers.items() if v} == {}


def test_every_variable_named_anywhere_is_declared():
    texts = [p.read_text() for p in python_files()]
    texts += [p.read_text() for p in (REPO / "scripts").glob("*.sh")]
    texts += [(REPO / f).read_text() for f in ("Makefile", "docker-compose.yaml", "docker-compose.gpu.yaml",
                                                ".env.example", ".ci/run", "docker/build-images.sh",
                                                "docker/build-ort-backend.sh", "docker/Dockerfile.task")]
    named = set(re.findall(r"\bSOCIAL_TONE_[A-Z0-9_]*[A-Z0-9]\b", "\n".join(texts)))
    assert named - set(env.VARS) == set()


def env_example() -> dict[str, tuple[str, str | None]]:
    """NAME -> (value, the [default] its comment states)."""
    out = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        m = re.match(r"([A-Z][A-Z0-9_]*)=(\S*)\s*(?:#\s*\[([^\]]*)\])?", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def test_env_example_lists_every_setting_a_user_sets_with_the_declared_default():
    listed = env_example()
    users = {n for n, v in env.VARS.items() if v.source in ("step", "secret", "server", "dag", "compose")
             and n.startswith("SOCIAL_TONE_")}
    assert users - set(listed) == set(), "declared but not in .env.example"
    assert {n for n in listed if n.startswith("SOCIAL_TONE_")} - set(env.VARS) == set(), "in .env.example only"
    for name, (_, stated) in listed.items():
        default = env.VARS[name].default if name in env.VARS else None
        if stated is not None and default is not None:
            assert stated == default, (name, stated, default)


def test_compose_defaults_are_the_declared_ones():
    text = (REPO / "docker-compose.yaml").read_text() + (REPO / "docker-compose.gpu.yaml").read_text()
    yaml.safe_load((REPO / "docker-compose.yaml").read_text())  # still valid
    for name, default in re.findall(r"\$\{(SOCIAL_TONE_\w+):-([^}]*)\}", text):
        declared = env.VARS[name].default
        # empty: compose passes nothing, and the registry's default applies where it is read
        assert default in ("", declared), (name, default, declared)

