import os
import signal
import time

import pytest

from mmjax import preemption


def test_a_signal_asks_to_stop_after_the_step_and_a_second_one_stops_at_once():
    # Python's own Ctrl-C handler before the watch, whatever pytest inherited: a process started
    # in the background by a shell without job control begins with SIGINT ignored.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        with preemption.Watch(mngr=None) as watch:
            assert not watch.reached(1)
            os.kill(os.getpid(), signal.SIGTERM)  # handled, the process lives on
            os.kill(os.getpid(), signal.SIGTERM)  # the same request twice at once (group + launcher)
            assert watch.reached(2) and watch.reason == "SIGTERM"
            time.sleep(1.1)
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)  # a second signal: the previous handler's behaviour
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        signal.signal(signal.SIGINT, inherited)
