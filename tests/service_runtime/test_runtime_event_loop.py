"""The event loop a service runs on: uvloop by default where installed, asyncio's on request."""

import asyncio
import builtins
import sys

import pytest

from service_runtime.event_loop import loop_factory
from service_runtime.server import run


def loop_module_under(choice: str) -> str:
    seen: list[str] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    run(main, event_loop=choice)
    return seen[0]


@pytest.mark.parametrize(("choice", "module"), [("auto", "uvloop"), ("uvloop", "uvloop")])
def test_auto_and_uvloop_run_on_uvloop(choice, module):
    assert loop_module_under(choice).split(".")[0] == module


def test_asyncio_runs_on_the_standard_librarys_loop():
    assert loop_module_under("asyncio").startswith("asyncio")


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused_naming_it(monkeypatch):
    real_import = builtins.__import__

    def no_uvloop(name, *args, **kwargs):
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "uvloop", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert loop_factory("auto") is None
    with pytest.raises(ValueError, match="uvloop"):
        loop_factory("uvloop")
