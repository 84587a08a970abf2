"""Test tiers by directory (``pytest -m unit|integration|system``), the shared fixtures, and a
throwaway Airflow home set before anything imports airflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import airflow as airflow_support

pytest_plugins = ["tests.support.fixtures"]

TIERS = ("unit", "integration", "system")
HERE = Path(__file__).parent

airflow_support.configure_environment()


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = Path(item.path).relative_to(HERE).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit, tests/integration or tests/system")
        item.add_marker(getattr(pytest.mark, tier))
