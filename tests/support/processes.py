"""Child processes that behave like a command typed at a terminal, however the test run itself was started."""

from __future__ import annotations

import signal


def as_if_typed() -> None:
    """`preexec_fn` for a child that must stop on Ctrl-C: a test run started in the background (`cmd &`,
    `nohup`) ignores SIGINT and SIGQUIT, and an ignored signal stays ignored across exec, so Python in the child
    would never raise KeyboardInterrupt. Restore the defaults a terminal gives."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
