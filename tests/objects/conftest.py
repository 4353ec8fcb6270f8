from pathlib import Path

import pytest

from tether.objects.store import ObjectStore


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    """An empty object cache in a temp folder."""
    s = ObjectStore(tmp_path / "cache")
    s.create()
    return s
