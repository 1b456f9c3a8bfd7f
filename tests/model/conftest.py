import pytest

from model.datasets.synthetic import make_synthetic


@pytest.fixture(scope="session")
def tiny():
    return make_synthetic("tiny", seed=0)
