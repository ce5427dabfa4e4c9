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
