"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Pin torch to one thread: on a shared 2-core machine two threads are far slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _restore_torch_determinism():
    """train() switches torch's deterministic algorithms on for the whole process and leaves
    them on (a known bug, tests/test_side_effects.py); restore the setting after every test
    so that it does not slow down the tests that follow (nearest_neighbours: about 4x)."""
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
