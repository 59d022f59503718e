"""The README's demo command runs the whole story and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys


def test_make_demo_story_runs_end_to_end():
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)  # the demo starts its own embedded control plane
    proc = subprocess.run(
        [sys.executable, "-m", "igor.demo"], capture_output=True, text=True, timeout=600, env=env
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "move-1 Succeeded" in out and "replay Verified" in out
    assert "heartbeat evacuated to" in out
    assert "move-sneaky Failed: verdict Diverged" in out
    assert "igor replay reproduced the divergence" in out
    assert "sneaky still ticking on its source" in out
    assert out.rstrip().endswith("demo complete")
