import signal
import subprocess
import sys
import time

from tests.tiny import REPO

CHILD = ("import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: (print('child saved', flush=True), "
         "sys.exit(0))); print('child started', flush=True); time.sleep(60)")


def test_a_signal_reaches_the_command_and_stops_the_script_after_it():
    script = f'set -e; source launch/forward_signals.sh; forward {sys.executable} -c "{CHILD}"; echo next step'
    process = subprocess.Popen(["bash", "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    assert process.stdout.readline().strip() == "child started"
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out = process.communicate(timeout=30)[0]
    assert process.returncode == 0
    assert "child saved" in out and "stopped by a signal" in out and "next step" not in out


def test_without_a_signal_the_commands_exit_status_is_returned():
    script = f'source launch/forward_signals.sh; forward {sys.executable} -c "raise SystemExit(3)" || echo "status $?"'
    out = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=30).stdout
    assert out.strip() == "status 3"
