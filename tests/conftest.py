"Shared fixtures: small synthetic data sets and the real KITTI sample frames."
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def run(*args, check=True, timeout=600, **kw):
    "Run a console script (or any command) and return the CompletedProcess; on failure show its output."
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '2')}
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{args[0]} exited {p.returncode}\n--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}")
    return p

@pytest.fixture(scope='session')
def synth(tmp_path_factory):
    "A small synthetic data folder (2 drives x 6 frames, 64x192), made with the CLI."
    d = tmp_path_factory.mktemp('synth')/'data'
    run('mergedepth_synth', '--output_dir', d, '--drives', 2, '--frames', 6, '--height', 64, '--width', 192, '--seed', 1)
    return d

@pytest.fixture(scope='session')
def kitti_sample():
    "The real KITTI sample frames; skipped (with the reason) only outside CI when they are absent."
    from mergedepth.testing import kitti_sample_dir
    d = kitti_sample_dir()
    if d is None: pytest.skip("KITTI sample data not found (set MERGEDEPTH_KITTI_SAMPLE)")
    return d
