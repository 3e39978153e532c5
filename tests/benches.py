"""The benchmark scripts' generators, loaded as modules for tests (benchmarks/ is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@cache
def people_bench() -> ModuleType:
    """benchmarks/people.py: generated stores of the two regimes, people known by construction."""
    spec = importlib.util.spec_from_file_location("people_bench", BENCHMARKS / "people.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["people_bench"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod
