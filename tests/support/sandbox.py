"""Run a shell script where it may mount: a full disk (a small tmpfs) or a read-only folder.

``unshare --user --map-root-user --mount`` gives an unprivileged process its own
mount namespace, where ``mount -t tmpfs`` and ``mount --bind -o ro`` work
without touching the machine. Where user namespaces are disabled the tests
that need one are skipped.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import pytest


@functools.cache
def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'd=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs "$d"'],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def run_mounted(
    script: str, *, cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``sh -c script`` in ``cwd``, in a private mount namespace.

    Skips the calling test where no namespace is allowed.
    """
    if not _unshare_works():
        pytest.skip("no user namespaces here: cannot mount a full or read-only folder")
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
