"""A wheel (a non-editable ``pip install``) carries the Hydra configs and trains from them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
@pytest.mark.slow
def test_wheel_carries_every_config_and_trains_outside_the_checkout(tmp_path):
    pip = [sys.executable, "-m", "pip"]
    source = tmp_path / "src"  # a copy: building in the checkout would leave build/ there
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("vaegan", "conf"):
        shutil.copytree(REPO / part, source / part, symlinks=True, ignore=skip)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    subprocess.run(
        [*pip, "wheel", str(source), "--no-deps", "-q", "-w", str(tmp_path / "dist")],
        check=True, capture_output=True, timeout=500,
    )
    (wheel,) = (tmp_path / "dist").glob("vaegan-*.whl")
    packed = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("vaegan/conf/")}
    conf = REPO / "conf"
    expected = {f"vaegan/conf/{p.relative_to(conf)}" for p in conf.rglob("*.yaml")}
    assert packed == expected, expected ^ packed

    site = tmp_path / "site"  # the wheel's files ahead of the editable checkout on sys.path
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "vaegan.train", "debug=tiny", "steps=2", "gan_start=1",
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = (run_dir / ".hydra" / "hydra.yaml").read_text()
    assert f"{site / 'vaegan' / 'conf'}" in config  # composed from the wheel's copy
