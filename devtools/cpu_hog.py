"""Run a command with a CPU hog beside it: one busy Python loop per core, started before the command
and stopped when it ends (``make test-busy``: ``make test`` on a machine as busy as a shared CI runner).

    python -m devtools.cpu_hog [--processes N] -- make test

The hogs run at the command's priority, so they take their share of every core for as long as the
command runs. Each hog watches its parent: if this runner dies without stopping them (SIGKILL), they
end within a moment instead of spinning on. The exit status is the command's.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

# A hog spins in slices of a few milliseconds and, between slices, checks that the runner that
# started it is still its parent (an orphan is adopted by init or a subreaper).
HOG = """
import os, sys
parent = int(sys.argv[1])
while os.getppid() == parent:
    for _ in range(100_000):
        pass
"""


def start_hogs(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", HOG, str(os.getpid())]) for _ in range(count)]


def stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(processes: Sequence[subprocess.Popen[bytes]]) -> float:
    """CPU time the (still running) hogs used so far, from /proc (0 where it cannot be read)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for process in processes:
        try:
            fields = open(f"/proc/{process.pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def run(command: Sequence[str], processes: int) -> int:
    hogs = start_hogs(processes)
    print(f"cpu_hog: {processes} busy loop(s) beside: {' '.join(command)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        child = subprocess.Popen(list(command))
        code = child.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the command too (the same process group)
        code = child.wait() if child is not None else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        used = cpu_seconds(hogs)
        stop(hogs)
    wall = time.monotonic() - started
    print(
        f"cpu_hog: stopped the busy loops after {wall:.0f} s; they used {used:.0f} CPU-seconds "
        f"({used / max(wall, 1e-9):.1f} cores on average); the command exited with {code}",
        file=sys.stderr,
        flush=True,
    )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.cpu_hog", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="busy loops to run (default: one per core)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run (put it after --)")
    if args.processes < 0:
        parser.error(f"--processes must be 0 or more, got {args.processes}")
    return run(command, args.processes)


if __name__ == "__main__":
    sys.exit(main())
