"""Fixtures for the deployment tests; the shared model is deploy_model.py."""

import sys
from pathlib import Path

import pytest

# The tests here import deploy_model, which sits next to them; the tests/ folder
# on the path (pyproject's pythonpath) has its own conftest, so not from there.
sys.path.append(str(Path(__file__).parent))

from deploy_model import Instruction, Manifests, final_stage, load_manifests


@pytest.fixture(scope="session")
def manifests() -> Manifests:
    return Manifests(load_manifests())


@pytest.fixture(name="final_stage", scope="session")
def final_stage_fixture() -> list[Instruction]:
    return final_stage()
