"""The project lock, with real processes: held while alive, released when the holder is killed."""

import os
import signal
import subprocess
import sys

import pytest

from hitless.errors import ExitStatus
from hitless.state.lock import Locked, ProjectLock


def test_a_second_holder_is_refused_with_who_holds_it(tmp_path):
    with ProjectLock(tmp_path, "upgrade netapi"):
        with pytest.raises(Locked) as caught:
            with ProjectLock(tmp_path, "up"):
                pass
        assert f"pid {os.getpid()} (`hitless upgrade netapi`" in str(caught.value)
        assert caught.value.exit_status == ExitStatus.LOCKED
    with ProjectLock(tmp_path, "up"):  # released on exit
        pass


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from pathlib import Path; from hitless.state.lock import ProjectLock\n"
         f"with ProjectLock(Path({str(tmp_path)!r}), 'upgrade'):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Locked, match=f"pid {holder.pid}"):
            with ProjectLock(tmp_path, "up"):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with ProjectLock(tmp_path, "up"):
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
