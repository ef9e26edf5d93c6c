"""How many CPUs this process may use, which is not always how many the machine has.

``os.cpu_count()`` counts the host's CPUs. A process pinned with ``taskset``, or in
a container given a cpuset or a CPU quota (``docker --cpus 2``), may use fewer;
sizing loader processes, OCR threads and inference threads by the host's
count then runs several threads per usable core, which costs more CPU time than it
saves. Imports nothing heavy: loader processes read it at start.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["usable_cpus"]

# cgroup v2 mounts the process's own group here inside a container.
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota.

    Example:
        >>> 1 <= usable_cpus() <= (os.cpu_count() or 1)
        True
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_quota(_CGROUP_CPU_MAX)
    return max(1, min(cpus, quota) if quota else cpus)


def cgroup_quota(path: Path) -> int | None:
    """CPUs a cgroup v2 ``cpu.max`` file allows, rounded up; None without a quota.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "cpu.max"
        >>> _ = f.write_text("150000 100000\\n")
        >>> cgroup_quota(f)
        2
        >>> _ = f.write_text("max 100000\\n")
        >>> cgroup_quota(f) is None
        True
    """
    try:
        fields = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None
