"""Run every benchmark in this folder, one after another, each printing its own table.

Run:  .venv/bin/python benchmarks/run_all.py                 (all bench_*.py)
      .venv/bin/python benchmarks/run_all.py embed search    (only names containing these)
      .venv/bin/python benchmarks/run_all.py --quick         (passes --quick to scripts that
                                                              accept it)
      .venv/bin/python benchmarks/run_all.py --list

Each script runs in its own process (so one's threads and caches do not skew another's) and
measures its baseline side by side in the same run. Numbers taken while other jobs load the
CPU are noisy: the 1-minute load average is printed before each script.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(filters: list[str]) -> list[Path]:
    scripts = sorted(HERE.glob("bench_*.py"))
    if filters:
        scripts = [s for s in scripts if any(f in s.stem for f in filters)]
    return scripts


def accepts_quick(script: Path) -> bool:
    return "--quick" in script.read_text(encoding="utf-8", errors="replace")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="Only scripts whose name contains one of these.")
    parser.add_argument("--quick", action="store_true", help="Smaller runs where supported.")
    parser.add_argument("--list", action="store_true", help="List the scripts and exit.")
    args = parser.parse_args(argv)
    scripts = discover(args.names)
    if args.list or not scripts:
        for script in scripts:
            print(script.name)
        if not scripts:
            print(f"no benchmark matches {args.names}", file=sys.stderr)
            return 1
        return 0
    env = {**os.environ, "TRANSFERKIT_QUIET": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent / "src"),
                                                      env.get("PYTHONPATH")]))
    summary = []
    for script in scripts:
        cmd = [sys.executable, str(script)]
        if args.quick and accepts_quick(script):
            cmd.append("--quick")
        print(f"\n=== {script.name}  (load average {os.getloadavg()[0]:.1f}; "
              f"{' '.join(cmd[1:])}) ===", flush=True)
        start = time.perf_counter()
        code = subprocess.call(cmd, env=env, cwd=HERE.parent)
        summary.append((script.name, code, time.perf_counter() - start))
    print("\n=== summary ===")
    for name, code, seconds in summary:
        print(f"{name:<28} {'ok' if code == 0 else f'exit {code}':>8} {seconds:8.0f} s")
    return 0 if all(code == 0 for _, code, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
