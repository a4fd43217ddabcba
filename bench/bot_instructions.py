"""Bot work in instructions: `bench/bot_throughput.py` under valgrind's callgrind, which counts
the instructions the process executes, the same on every run whatever else the machine does.

Three runs of the same workload (fixed seeds, PYTHONHASHSEED=0): the full stack with a small and
a large mix and the echo bot off, then the large mix with the echo bot on. Differences isolate
what each bot executes per update, without the seed, start-up and warm-up:

    full stack per update = (large - small) / (updates of large - updates of small)
    echo bot per update   = (large with echo - large) / echo updates

    python bench/bot_instructions.py [--small 400] [--large 1200] [--envelopes 2000]

Under callgrind Python runs about 50 times slower: the three runs take about 5 minutes on two
cores. Instructions are work, not time: the full stack also waits on memory more (its SQLite
pages, its larger heap and code), so its share of the echo bot's rate by time is lower.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_COLLECTED = re.compile(r"Collected\s*:\s*([\d,]+)")


def measure(
    valgrind: str, updates: int, passes: int, envelopes: int, out: Path
) -> tuple[int, int, int]:
    """(instructions, full stack updates, echo updates) of one run under callgrind."""
    done = subprocess.run(  # noqa: S603  # fixed arguments
        [
            valgrind,
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(ROOT / "bench" / "bot_throughput.py"),
            "--updates",
            str(updates),
            "--envelopes",
            str(envelopes),
            "--echo-passes",
            str(passes),
            "--json",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    run = json.loads(done.stdout)["runs"][0]
    return int(found[1].replace(",", "")), run["lacre"]["updates"], run["echo"]["updates"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=400)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--envelopes", type=int, default=2000)
    args = parser.parse_args()
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is missing: apt-get install valgrind")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(3) as pool:
        runs = [
            pool.submit(
                measure, valgrind, size, passes, args.envelopes, Path(tmp) / f"cg.{size}.{passes}"
            )
            for size, passes in ((args.small, 0), (args.large, 0), (args.large, 1))
        ]
        (small, small_n, _), (large, large_n, _), (both, _, echo_n) = (r.result() for r in runs)
    full = (large - small) / (large_n - small_n)
    echo = (both - large) / echo_n
    print(f"{args.envelopes} envelopes, mixes of {args.small} and {args.large} updates")
    print(f"  full stack: {full:,.0f} instructions per update ({large_n - small_n} updates)")
    print(f"  echo bot:   {echo:,.0f} instructions per update ({echo_n} updates)")
    print(f"  echo / full stack by instructions: {echo / full:.1%}")


if __name__ == "__main__":
    main()
