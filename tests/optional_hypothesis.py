"""hypothesis where it is installed; where it is not (the lent GPU machine may lack it), each
property test skips, saying why, and every other test of its module still runs.

``from .optional_hypothesis import HealthCheck, given, settings, st``"""

import pytest

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:
    class _Absent:
        """Stands in for hypothesis' strategies and HealthCheck: what the decorators' arguments
        build at import time, nothing."""

        def __getattr__(self, name):
            return self

        def __call__(self, *args, **kwargs):
            return self

    st = HealthCheck = _Absent()

    def given(*args, **kwargs):
        return pytest.mark.skip(reason="needs hypothesis, which is not installed (pip install hypothesis)")

    def settings(*args, **kwargs):
        return lambda test: test

__all__ = ["HealthCheck", "given", "settings", "st"]
