"""Library calls leave the process as they found it."""

from pathlib import Path

import torch

from vid2reid.synthetic import make_synthetic_store
from vid2reid.settings import make_config
from vid2reid.train import train


def test_train_leaves_deterministic_algorithms_as_they_were(tmp_path: Path, one_thread):
    store = make_synthetic_store(tmp_path / "s", n_subjects=4, walks={"nm": 2, "bg": 1},
                                 frames=(40, 50), seed=3)
    assert not torch.are_deterministic_algorithms_enabled()  # torch's default
    train(make_config("casia-b", epochs=1, f=20, x=5, eps=0.5, batch_size=64, hidden=16),
          store, tmp_path / "run", progress=False)
    assert not torch.are_deterministic_algorithms_enabled()
