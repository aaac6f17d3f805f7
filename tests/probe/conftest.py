import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from loopback import State, serve


@pytest.fixture(scope="session")
def loopback() -> Iterator[tuple[str, State]]:
    with serve() as pair:
        yield pair
