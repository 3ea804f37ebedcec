"""A forkserver whose server has the heavy modules imported, shared by the kill tests.

Children forked from a server that already imported torch (and lightning) start in
milliseconds instead of the seconds those imports take on these machines, so a test can
SIGKILL and restart a training process many times.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver as fs
import os
from collections.abc import Sequence
from pathlib import Path


def preloaded_forkserver(modules: Sequence[str]) -> multiprocessing.context.BaseContext:
    """A ``forkserver`` context whose server has imported ``modules``.

    The forkserver is one per process: a server that another test file started without
    these modules is stopped and restarted with them (its children are done by then). The
    server imports the preloaded modules before it learns the parent's ``sys.path``, so this
    folder goes in the ``PYTHONPATH`` it is started with.
    """
    server = fs._forkserver
    if server._forkserver_pid is not None and not set(modules) <= set(server._preload_modules or ()):
        server._stop()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(modules))
    saved = os.environ.get("PYTHONPATH")
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = here + (os.pathsep + saved if saved else "")
    try:
        fs.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    return ctx
