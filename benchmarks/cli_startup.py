"""Start-up cost of the ``downsizenet`` command: wall time and peak memory of quick commands.

Each command runs ``--repeats`` times as a fresh process (the console script next to this
interpreter, ``DOWNSIZENET_HOME`` set to an empty temporary folder, so ``hub list`` shows the
shipped resizers only); the table gives medians of wall time and of the process's peak resident
memory (``ru_maxrss`` from ``wait4``), and the slowest imports of ``downsizenet --help`` by
``python -X importtime`` as evidence of where the time goes.

    .venv/bin/python benchmarks/cli_startup.py --repeats 5 --out benchmarks/results/cli_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

#: (label, arguments, target in seconds): the targets of the project's issue 18.
COMMANDS: list[tuple[str, list[str], float]] = [
    ("--help", ["--help"], 1.0),
    ("--version", ["--version"], 1.0),
    ("pretrain --help", ["pretrain", "--help"], 1.0),
    ("hub --help", ["hub", "--help"], 1.0),
    ("hub list", ["hub", "list"], 2.0),
    ("hub show", ["hub", "show", "downsizenet/scenes-a-noisy-x0.3"], 2.0),
]
#: Peak resident memory allowed for the help and version screens, in MB.
HELP_RSS_MB = 150.0
_CLI_MAIN = "import sys; from downsizenet_hub.cli import main; sys.argv = {argv!r}; main()"


def _command() -> list[str]:
    script = Path(sys.executable).with_name("downsizenet")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "downsizenet_hub"]


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak resident MB and exit code of one fresh ``downsizenet argv`` process."""
    start = time.perf_counter()
    process = subprocess.Popen(
        _command() + argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024.0, process.returncode  # ru_maxrss is KiB on Linux


def import_offenders(env: dict[str, str], top: int) -> list[dict[str, Any]]:
    """The ``top`` costliest packages imported by ``downsizenet --help`` (``-X importtime``).

    Each package (the first part of a module name) counts with its costliest import, which
    includes everything that import pulled in; ``downsizenet_hub`` itself is left out.
    """
    code = _CLI_MAIN.format(argv=["downsizenet", "--help"])
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    costliest: dict[str, dict[str, Any]] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        module = name.strip()
        package = module.split(".")[0]
        if package == "downsizenet_hub":
            continue
        cumulative_ms = int(cumulative_us) / 1000.0
        if package not in costliest or cumulative_ms > costliest[package]["cumulative_ms"]:
            costliest[package] = {"package": package, "module": module,
                                  "cumulative_ms": cumulative_ms}  # fmt: skip
    rows = sorted(costliest.values(), key=lambda row: row["cumulative_ms"], reverse=True)
    return rows[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="Runs per command (median).")
    parser.add_argument("--top", type=int, default=8, help="Import offenders to list.")
    parser.add_argument("--label", default="", help="Recorded with the results, e.g. 'before'.")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/cli_startup.json"), help="JSON file."
    )
    args = parser.parse_args()

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="downsizenet-startup-") as home:
        env = {**os.environ, "DOWNSIZENET_HOME": home, "COLUMNS": "80"}
        run_once(["--version"], env)  # warm the file cache once
        for label, argv, target in COMMANDS:
            runs = [run_once(argv, env) for _ in range(args.repeats)]
            walls = [wall for wall, _, _ in runs]
            rss = [mb for _, mb, _ in runs]
            results.append(
                {
                    "command": label,
                    "argv": argv,
                    "exit_codes": sorted({code for _, _, code in runs}),
                    "wall_s_median": statistics.median(walls),
                    "wall_s_min": min(walls),
                    "wall_s_max": max(walls),
                    "max_rss_mb_median": statistics.median(rss),
                    "target_wall_s": target,
                    "target_rss_mb": HELP_RSS_MB if target <= 1.0 else None,
                }
            )
        offenders = import_offenders(env, args.top)

    payload = {
        "benchmark": "cli_startup",
        "label": args.label,
        "repeats": args.repeats,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "commands": results,
        "importtime_help_top": offenders,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

    console = Console()
    table = Table(title=f"downsizenet start-up, median of {args.repeats} ({args.label or 'now'})")
    for column in ("command", "wall s", "peak RSS MB", "target", "exit"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for row in results:
        target = f"< {row['target_wall_s']:g} s"
        if row["target_rss_mb"] is not None:
            target += f", < {row['target_rss_mb']:g} MB"
        table.add_row(
            row["command"],
            f"{row['wall_s_median']:.2f}",
            f"{row['max_rss_mb_median']:.0f}",
            target,
            ",".join(str(code) for code in row["exit_codes"]),
        )
    console.print(table)
    imports = Table(title="slowest top-level imports of `downsizenet --help` (-X importtime)")
    imports.add_column("package (costliest import)")
    imports.add_column("cumulative ms", justify="right")
    for row in offenders:
        imports.add_row(f"{row['package']} ({row['module']})", f"{row['cumulative_ms']:.0f}")
    console.print(imports)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
