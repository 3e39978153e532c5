"""A Ctrl-C whose KeyboardInterrupt is swallowed (raised inside a weakref callback or __del__)
still stops the work at the next check: frame decoding and the training loop call it."""

import os
import signal
import time
from pathlib import Path

import pytest

from vid2reid import interrupts
from vid2reid.pose.video import FrameReader

VIDEO = Path(__file__).resolve().parents[1] / "sample_videos" / "001-nm-01-090.avi"


@pytest.fixture
def default_sigint():
    """The interpreter's own SIGINT handler (a runner started in the background ignores SIGINT)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def _ctrl_c_swallowed() -> None:
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the handler runs in the main thread and raises here
        pytest.fail("SIGINT did not arrive")
    except KeyboardInterrupt:
        pass  # what an "Exception ignored in ..." callback does


def test_a_swallowed_ctrl_c_is_raised_again_by_check(default_sigint):
    with interrupts.remembered():
        assert signal.getsignal(signal.SIGINT) is interrupts.on_sigint
        interrupts.check()  # nothing pending yet
        _ctrl_c_swallowed()
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    interrupts.check()  # forgotten once the command is over


def test_frame_reading_stops_at_a_swallowed_ctrl_c(default_sigint):
    frames = sum(1 for _ in FrameReader(VIDEO))
    assert frames == 64
    with interrupts.remembered():
        reader = FrameReader(VIDEO)
        it = iter(reader)
        next(it)
        _ctrl_c_swallowed()
        with pytest.raises(KeyboardInterrupt):
            next(it)
        assert reader.decoded == 1


def test_an_ignored_sigint_stays_ignored():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.remembered():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)
