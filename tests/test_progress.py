import sys

from mmjax import progress


class _Terminal:
    def __init__(self, is_terminal: bool):
        self.is_terminal = is_terminal

    def isatty(self):
        return self.is_terminal

    def write(self, text):
        return len(text)

    def flush(self):
        pass


def test_bars_are_drawn_on_a_terminal_only_and_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal(True))
    monkeypatch.delenv("MMJAX_PROGRESS", raising=False)
    assert progress.shown() and not progress.bar(range(3), desc="x", unit="step").disable
    assert progress.bar(range(3), desc="x", unit="step", enabled=False).disable
    monkeypatch.setenv("MMJAX_PROGRESS", "0")
    assert not progress.shown()
    monkeypatch.delenv("MMJAX_PROGRESS")
    monkeypatch.setattr(sys, "stderr", _Terminal(False))  # a redirected log gets no carriage returns
    assert not progress.shown() and progress.bar(range(3), desc="x", unit="step").disable


def test_a_pause_is_left_out_of_an_enabled_bars_rate_and_a_disabled_bar_ignores_it():
    import io

    import tqdm

    bar = tqdm.tqdm(total=10, file=io.StringIO())
    start, last_print = bar.start_t, bar.last_print_t
    progress.exclude_pause(bar, 5.0)
    assert (bar.start_t, bar.last_print_t) == (start + 5.0, last_print + 5.0)
    off = tqdm.tqdm(total=10, disable=True)
    progress.exclude_pause(off, 5.0)  # no clock to move: nothing happens
