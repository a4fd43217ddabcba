"""The bot benchmark still runs end to end (small sizes; its figures are not checked here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_bot_benchmark_runs_both_bots_and_the_ledger_stays_sound() -> None:
    done = subprocess.run(  # noqa: S603  # our own script, fixed arguments
        [
            sys.executable,
            str(ROOT / "bench" / "bot_throughput.py"),
            "--updates",
            "80",
            "--envelopes",
            "200",
            "--users",
            "3",
            "--repeat",
            "2",
            "--json",
        ],
        cwd=ROOT,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert len(report["runs"]) == 2
    for run in report["runs"]:
        assert run["lacre"]["updates"] > 0 and run["lacre"]["updates_per_s"] > 0
        assert run["echo"]["updates_per_s"] > 0
        # The floor replays the full stack's payloads, three passes by default.
        assert run["echo"]["updates"] > 2 * run["lacre"]["updates"]
        assert run["lacre"]["audit_violations"] == 0
    assert report["median"]["ratio"] > 0
