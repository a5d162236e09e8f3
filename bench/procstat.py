"""CPU time and peak memory of processes, read from Linux's /proc: no extra dependency."""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, all threads) of a process and of its children it reaped.

    Counting reaped children is what accounts for PostgreSQL's short-lived backends: one
    that starts and ends between two readings lives on only in the postmaster's figures.
    0 if the process is gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed:
    # utime, stime, cutime, cstime are fields 14-17.
    fields = stat.rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:15]) / TICKS


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idling, since boot."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle, iowait = values[3], values[4]
    return (sum(values[:8]) - idle - iowait) / TICKS


def pids_named(*names: str) -> list[int]:
    """Processes whose command name is one of ``names`` (redis-server, postgres, …)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    pids.append(int(entry.name))
            except OSError:
                continue  # it ended meanwhile
    return pids


def status_mib(pid: int, field: str) -> float:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM) in MiB; 0 if it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_memory(pid: int) -> bool:
    """Make VmHWM start again from the current RSS (Linux ≥ 4.0); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class CpuWindow:
    """CPU used by groups of processes between start() and stop(), in cores (seconds/second)."""

    groups: dict[str, Callable[[], list[int]]]
    """What finds each group's processes, by the name its cores are reported under; asked
    again at stop(), so processes that started meanwhile count too."""

    def start(self) -> None:
        self._wall = time.monotonic()
        self._machine = machine_busy_seconds()
        self._cpu = {name: _total(pids) for name, pids in self.groups.items()}

    def stop(self) -> dict[str, float]:
        """Cores used by each group, and by the whole machine under "machine"."""
        wall = max(time.monotonic() - self._wall, 1e-9)
        cores = {
            name: (_total(pids) - self._cpu[name]) / wall for name, pids in self.groups.items()
        }
        cores["machine"] = (machine_busy_seconds() - self._machine) / wall
        return cores


def _total(find: Callable[[], list[int]]) -> float:
    return sum(cpu_seconds(pid) for pid in find())
