import os
import signal
import subprocess
import sys
import time

import pytest

from tests.tiny import REPO

CHILD = ("import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: (print('child saved', flush=True), "
         "sys.exit(0))); print('child started', flush=True); time.sleep(60)")


def _bash_with_default_signals(script: str) -> list[str]:
    """A command running ``script`` in bash with SIGTERM and SIGINT at their defaults, whatever
    pytest inherited: a process started in the background by a shell without job control ignores
    SIGINT, and a shell that starts with a signal ignored cannot trap it. (A Python exec, not
    Popen's preexec_fn, which forks a multithreaded process.)"""
    reset = ("import os, signal, sys; [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGINT)]; "
             "os.execvp('bash', ['bash', '-c', sys.argv[1]])")
    return [sys.executable, "-c", reset, script]


@pytest.mark.parametrize("signum, to_group", [(signal.SIGTERM, False), (signal.SIGTERM, True),
                                               (signal.SIGINT, True)])  # the last: Ctrl-C in a terminal
def test_a_signal_reaches_the_command_once_and_stops_the_script_after_it(signum, to_group):
    script = f'set -e; source launch/forward_signals.sh; forward {sys.executable} -c "{CHILD}"; echo next step'
    process = subprocess.Popen(_bash_with_default_signals(script), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert process.stdout.readline().strip() == "child started"
    time.sleep(0.2)
    if to_group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    out = process.communicate(timeout=30)[0]
    assert process.returncode == 0
    assert out.count("child saved") == 1 and "stopped by a signal" in out and "next step" not in out, out


def test_without_a_signal_the_commands_exit_status_is_returned():
    script = f'source launch/forward_signals.sh; forward {sys.executable} -c "raise SystemExit(3)" || echo "status $?"'
    out = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=30).stdout
    assert out.strip() == "status 3"
