"""docs/configuration.md is exactly what the configuration dataclasses generate."""

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> ModuleType:
    path = ROOT / "tools" / "gen_config_docs.py"
    spec = importlib.util.spec_from_file_location("gen_config_docs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_config_docs", module)
    spec.loader.exec_module(module)
    return module


def test_the_configuration_page_matches_the_dataclasses() -> None:
    generator = _generator()
    assert generator.PAGE.read_text() == generator.render(), "run `make gen`"


def test_every_flag_of_every_service_is_on_the_page() -> None:
    generator = _generator()
    page = generator.PAGE.read_text()
    for _, _, prefix, config in generator.SERVICES:
        for option in dataclasses.fields(config):
            assert f"`--{option.name.replace('_', '-')}`" in page
            assert f"`{prefix}_{option.name.upper()}`" in page
