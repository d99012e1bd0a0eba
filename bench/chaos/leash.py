"""`python -m bench.chaos.leash PARENT_PID COMMAND...`: run COMMAND so that it dies with the harness.

Linux sends the leashed process SIGKILL when the harness (the thread that started it: always the
harness's main thread) dies, even by SIGKILL, so no API, worker, sink or client outlives a harness that
was killed outright. The request survives exec; COMMAND keeps the pid the harness knows.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # prctl(2)


def main(argv: list[str]) -> int:
    parent, command = int(argv[0]), argv[1:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the harness died before the request above took effect
            return 1
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
