"""Bot work in instructions: `bench/bot_throughput.py` under valgrind's callgrind, which counts
the instructions the process executes, the same on every run whatever else the machine does.

Three runs of the same workload (fixed seeds, PYTHONHASHSEED=0): the full stack with a small and
a large mix and the echo bot off, then the large mix with the echo bot on. Differences isolate
what each bot executes per update, without the seed, start-up and warm-up:

    full stack per update = (large - small) / (updates of large - updates of small)
    echo bot per update   = (large with echo - large) / echo updates

    python bench/bot_instructions.py [--small 400] [--large 1200] [--envelopes 2000] [--caches]

`--caches` runs cachegrind instead, which also simulates the first-level instruction and data
caches and the last-level cache, and prints their misses per update the same way: where the
full stack's time per instruction goes.

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
# cachegrind's summary: "I   refs:  12,655,792,749", "D1  misses:  140,653,795  (...)".
_SUMMARY = re.compile(r"==\d+== (I|I1|LLi|D|D1|LLd|LL)\s+(refs|misses):\s+([\d,]+)")
COUNTERS = ("I refs", "I1 misses", "D refs", "D1 misses", "LL refs", "LL misses")


def measure(
    valgrind: str, updates: int, passes: int, envelopes: int, out: Path, caches: bool
) -> tuple[dict[str, int], int, int]:
    """(counters, full stack updates, echo updates) of one run under callgrind (instructions
    only) or cachegrind (`caches`: instructions, data references and cache misses)."""
    tool = (
        ["--tool=cachegrind", "--cache-sim=yes", f"--cachegrind-out-file={out}"]
        if caches
        else ["--tool=callgrind", f"--callgrind-out-file={out}"]
    )
    done = subprocess.run(  # noqa: S603  # fixed arguments
        [
            valgrind,
            *tool,
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
    if caches:
        counters = {
            f"{m[1]} {m[2]}": int(m[3].replace(",", "")) for m in _SUMMARY.finditer(done.stderr)
        }
    else:
        found = _COLLECTED.search(done.stderr)
        counters = {"I refs": int(found[1].replace(",", ""))} if found else {}
    if done.returncode != 0 or "I refs" not in counters:
        raise SystemExit(f"valgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    run = json.loads(done.stdout)["runs"][0]
    return counters, run["lacre"]["updates"], run["echo"]["updates"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=400)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--envelopes", type=int, default=2000)
    parser.add_argument("--caches", action="store_true", help="cachegrind: cache misses too")
    args = parser.parse_args()
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is missing: apt-get install valgrind")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(3) as pool:
        runs = [
            pool.submit(
                measure,
                valgrind,
                size,
                passes,
                args.envelopes,
                Path(tmp) / f"cg.{size}.{passes}",
                args.caches,
            )
            for size, passes in ((args.small, 0), (args.large, 0), (args.large, 1))
        ]
        (small, small_n, _), (large, large_n, _), (both, _, echo_n) = (r.result() for r in runs)
    full = {k: (large[k] - small[k]) / (large_n - small_n) for k in large}
    echo = {k: (both[k] - large[k]) / echo_n for k in large}
    print(f"{args.envelopes} envelopes, mixes of {args.small} and {args.large} updates")
    print(
        f"  full stack: {full['I refs']:,.0f} instructions per update ({large_n - small_n} updates)"
    )
    print(f"  echo bot:   {echo['I refs']:,.0f} instructions per update ({echo_n} updates)")
    print(f"  echo / full stack by instructions: {echo['I refs'] / full['I refs']:.1%}")
    if args.caches:
        print("  per update (simulated caches):      full stack        echo bot")
        for name in COUNTERS[1:]:
            print(f"    {name:<30} {full[name]:>14,.0f} {echo[name]:>15,.0f}")
        for name, part, of in (("I1", "I1 misses", "I refs"), ("D1", "D1 misses", "D refs")):
            print(
                f"    {name} miss rate {'':<20} {full[part] / full[of]:>14.2%}"
                f" {echo[part] / echo[of]:>15.2%}"
            )


if __name__ == "__main__":
    main()
