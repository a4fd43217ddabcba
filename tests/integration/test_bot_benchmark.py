"""The bot benchmark still runs end to end (small sizes; its figures are not checked here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def benchmark(*options: str) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603  # our own script, fixed arguments
        [
            sys.executable,
            str(ROOT / "bench" / "bot_throughput.py"),
            *("--updates", "80", "--envelopes", "200", "--users", "3", "--json"),
            *options,
        ],
        cwd=ROOT,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_the_bot_benchmark_runs_both_bots_and_the_ledger_stays_sound() -> None:
    report = benchmark("--repeat", "2")
    assert len(report["runs"]) == 2
    # Each run in a process of its own: a process that ran a round measures differently.
    assert len({run["pid"] for run in report["runs"]}) == 2
    for run in report["runs"]:
        assert run["lacre"]["updates"] > 0 and run["lacre"]["updates_per_s"] > 0
        assert run["echo"]["updates_per_s"] > 0
        # The floor replays the full stack's payloads, three passes by default.
        assert run["echo"]["updates"] > 2 * run["lacre"]["updates"]
        assert run["lacre"]["audit_violations"] == 0
    assert report["median"]["ratio"] > 0


def test_the_runs_can_share_one_process() -> None:
    report = benchmark("--repeat", "2", "--same-process")
    assert len(report["runs"]) == 2 and len({run["pid"] for run in report["runs"]}) == 1
    assert all(run["lacre"]["audit_violations"] == 0 for run in report["runs"])
