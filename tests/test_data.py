"""Training windows: the three ways of cutting them, checked against plain loops."""

import numpy as np
import pytest

from vid2reid.data import SequenceBank, cut_windows, normalise
from vid2reid.store import Record
from vid2reid.settings import make_config
from vid2reid.train import epoch_windows


def _bank(lengths=(23, 6, 40, 7), joints: int = 4) -> tuple[SequenceBank, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(t, joints, 3)).astype(np.float32) for t in lengths]
    recs = [Record(str(i), "nm", "01", "000", f"{i}.npz", len(s), "")
            for i, s in enumerate(seqs)]
    return SequenceBank.from_sequences(recs, seqs), [normalise(s, "") for s in seqs]


def _as_rows(w: np.ndarray) -> list[bytes]:
    return sorted(x.tobytes() for x in w)


def test_all_mode_cuts_windows_as_the_reference_does():
    # the SimMC authors' preprocessing: for every offset s in 0..f-1, windows of length f
    # at stride f // 2 from seq[s:]; a window starts at every frame, most of them twice
    bank, seqs = _bank()
    f = 6
    seq, start = bank.window_starts(f, "all")
    got = bank.windows(seq, start, f)
    expected = [w for s_ in seqs for s in range(f) for w in cut_windows(s_[s:], f, f // 2)]
    assert _as_rows(got) == _as_rows(np.array(expected))
    t = bank.length[0]
    assert (seq == 0).sum() == sum(len(range(s, t - f + 1, 3)) for s in range(f))  # ~2 (T - f + 1)
    assert set(start[seq == 0]) == set(range(t - f + 1))


def test_fixed_mode_is_stride_half_f_from_zero():
    bank, seqs = _bank()
    seq, start = bank.window_starts(6, "fixed")
    expected = np.concatenate([cut_windows(s, 6, 3) for s in seqs])
    np.testing.assert_array_equal(bank.windows(seq, start, 6), expected)


def test_shifted_mode_draws_one_offset_per_walk_and_covers_every_start():
    bank, _ = _bank(lengths=(23, 40, 6))
    f, stride = 6, 3
    rng = np.random.default_rng(1)
    seen: dict[int, set] = {0: set(), 1: set(), 2: set()}
    for _ in range(30):
        seq, start = bank.window_starts(f, "shifted", rng)
        for i, t in enumerate(bank.length):
            s = start[seq == i]
            assert len(set(s % stride)) <= 1  # one offset per walk and epoch
            assert len(s) >= 1 and np.all(np.diff(s) == stride) and s.min() < stride
            assert s.max() <= t - f
            seen[i] |= set(s.tolist())
    for i, t in enumerate(bank.length):
        assert seen[i] == set(range(t - f + 1))  # every start frame over the epochs


def test_epoch_windows_keys_number_windows_within_each_walk():
    bank, _ = _bank()
    cfg = make_config("kgbd", windows="shifted")
    x, keys = epoch_windows(bank, cfg, np.random.default_rng(3))
    seq, number = keys >> 32, keys & 0xFFFFFFFF
    assert len(np.unique(keys)) == len(keys) == len(x) and x.shape[1:] == (6, 4, 3)
    for i in np.unique(seq):
        np.testing.assert_array_equal(number[seq == i], np.arange((seq == i).sum()))


def test_unknown_window_mode_is_a_config_error():
    from vid2reid.errors import ConfigError

    with pytest.raises(ConfigError, match="windows"):
        make_config("kgbd", windows="overlapping")


# --- windows against slices by hand (no vid2reid window code in the oracle) ------------------

def _slices(seq: np.ndarray, f: int, step: int, first: int = 0) -> list[np.ndarray]:
    """seq[s : s + f] for s = first, first + step, ... while a whole window fits."""
    out, s = [], first
    while s + f <= len(seq):
        out.append(seq[s:s + f])
        s += step
    return out


@pytest.mark.parametrize("f", [6, 7])
def test_fixed_and_all_modes_equal_slices_by_hand_with_leftover_frames(f):
    lengths = (23, 21, f, 40)  # 23 and 40 leave frames after the last window; f gives one window
    bank, seqs = _bank(lengths)
    step = f // 2
    seq, start = bank.window_starts(f, "fixed")
    expected = [w for s in seqs for w in _slices(s, f, step)]
    np.testing.assert_array_equal(bank.windows(seq, start, f), np.array(expected))
    # walk 0: 23 frames, f=6: starts 0,3,..,15, frames 21 and 22 in no window of this epoch
    if f == 6:
        assert start[seq == 0].tolist() == [0, 3, 6, 9, 12, 15]
        assert start[seq == 1].tolist() == [0, 3, 6, 9, 12, 15]  # 21 frames: 15..20 is whole
    assert start[seq == 2].tolist() == [0]
    seq, start = bank.window_starts(f, "all")
    expected = [w for s in seqs for o in range(f) for w in _slices(s, f, step, o)]
    np.testing.assert_array_equal(bank.windows(seq, start, f), np.array(expected))


def test_shifted_windows_equal_slices_from_the_drawn_offset():
    f, step = 6, 3
    bank, seqs = _bank((23, 21, 6, 7))
    rng = np.random.default_rng(5)
    offsets = set()
    for _ in range(10):
        seq, start = bank.window_starts(f, "shifted", rng)
        got = bank.windows(seq, start, f)
        for i, s in enumerate(seqs):
            first = int(start[seq == i][0])
            assert 0 <= first < min(step, len(s) - f + 1)
            offsets.add((i, first))
            np.testing.assert_array_equal(got[seq == i], np.array(_slices(s, f, step, first)))
    assert {o for i, o in offsets if i == 0} == {0, 1, 2}  # each offset drawn at some epoch


@pytest.mark.parametrize("layout, root", [("h36m-17", 0), ("coco-17", 11)])
def test_test_windows_are_non_overlapping_slices_of_root_relative_joints(layout, root):
    """evaluate()'s windows (make_windows at its default stride f): frame 0, f, 2f, ...;
    the frames after the last whole window are left out; the layout's root joint is 0."""
    from vid2reid.data import make_windows

    rng = np.random.default_rng(2)
    seqs = [rng.normal(size=(t, 17, 3)).astype(np.float32) for t in (23, 18, 5)]
    recs = [Record(str(i), "nm", "01", "000", f"{i}.npz", len(s), layout)
            for i, s in enumerate(seqs)]
    ws = make_windows(recs, seqs, 6)
    rel = [s - s[:, root:root + 1] for s in seqs]
    expected = [w for r in rel for w in _slices(r, 6, 6)]
    np.testing.assert_array_equal(ws.x, np.array(expected))
    assert ws.seq.tolist() == [0, 0, 0, 1, 1, 1]  # 23 frames: 3 windows (5 left over); 5: none


def test_auto_cuts_all_windows_while_affordable_else_shifted(monkeypatch):
    import vid2reid.data as data

    bank, _ = _bank()
    n_all = len(bank.window_starts(6, "all")[0])
    assert bank.count_all(6) == n_all
    monkeypatch.setattr(data, "ALL_WINDOWS_MAX", n_all)
    assert bank.resolve_mode(6, "auto") == "all"
    np.testing.assert_array_equal(bank.window_starts(6, "auto")[1], bank.window_starts(6, "all")[1])
    monkeypatch.setattr(data, "ALL_WINDOWS_MAX", n_all - 1)
    assert bank.resolve_mode(6, "auto") == "shifted"
    a = bank.window_starts(6, "auto", np.random.default_rng(5))
    b = bank.window_starts(6, "shifted", np.random.default_rng(5))
    np.testing.assert_array_equal(a[1], b[1])
    assert bank.resolve_mode(6, "fixed") == "fixed"
