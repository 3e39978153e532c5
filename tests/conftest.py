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
