"""docker/wheelhouse.sh: the images' wheels are for Python 3.11 whatever Python the host has."""
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PY310 = Path.home() / ".pyenv" / "versions" / "3.10.13" / "bin" / "python"
BASE = "social-tone/base:bookworm"


def wheelhouse(req: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """docker/wheelhouse.sh's wheelhouse() on `req`, with a Python 3.10 as the host's."""
    return subprocess.run(["bash", "-c", ". docker/wheelhouse.sh && wheelhouse \"$0\"", str(req)], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": str(PY310),
                               "WHEELHOUSE": str(tmp_path / "wheels"), "BASE_IMAGE": BASE, "CACHE": str(tmp_path)})


def has_image(image: str) -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True).returncode == 0


@pytest.mark.skipif(not PY310.exists() or not has_image(BASE), reason="needs pyenv's 3.10 and the base image")
def test_a_host_without_python_3_11_builds_the_wheels_in_the_base_image(tmp_path):
    """With PYTHON=3.10 the wheels are built by the base image's 3.11: a requirement marked for
    3.11 only is in the wheelhouse (a 3.10 pip would skip it), and the folder is complete."""
    req = tmp_path / "requirements.txt"
    req.write_text('six==1.16.0; python_version == "3.11"\n')
    out = wheelhouse(req, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "not Python 3.11" in out.stderr and out.stdout.strip() == str(tmp_path / "wheels")
    assert sorted(p.name for p in (tmp_path / "wheels").iterdir()) == [".complete", "six-1.16.0-py2.py3-none-any.whl"]


@pytest.mark.skipif(not PY310.exists() or not has_image(BASE), reason="needs pyenv's 3.10 and the base image")
def test_a_failed_build_is_not_marked_complete(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("no-such-package-social-tone==0.0.1\n")
    out = wheelhouse(req, tmp_path)
    assert out.returncode != 0 and "failed" in out.stderr
    assert not (tmp_path / "wheels" / ".complete").exists()
