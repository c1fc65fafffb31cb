"""Write docs/configuration.md from the services' configuration dataclasses.

Each field of a service's config is one flag and one environment variable
(service_runtime.config), so the reference is generated rather than written:
`make gen` rewrites it, and tests/test_configuration_docs.py fails while the
page and the dataclasses differ.
"""

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from console_svc.config import ENV_PREFIX as CONSOLE_PREFIX
from console_svc.config import ConsoleConfig
from processor_svc.config import ENV_PREFIX as PROCESSOR_PREFIX
from processor_svc.config import ProcessorConfig
from quote_svc.config import ENV_PREFIX as QUOTE_PREFIX
from quote_svc.config import QuoteConfig
from requestor_svc.config import ENV_PREFIX as REQUESTOR_PREFIX
from requestor_svc.config import RequestorConfig
from service_runtime.config import ListenerOptions

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"

#: (title, command, environment prefix, config class), in the order of the page.
SERVICES: tuple[tuple[str, str, str, type[ListenerOptions]], ...] = (
    ("The quote service", "python -m quote_svc", QUOTE_PREFIX, QuoteConfig),
    ("The processor service", "python -m processor_svc", PROCESSOR_PREFIX, ProcessorConfig),
    ("The requestor service", "python -m requestor_svc", REQUESTOR_PREFIX, RequestorConfig),
    ("The console", "python -m console_svc", CONSOLE_PREFIX, ConsoleConfig),
)

_INTRO = """\
# Configuration reference

Every option of a service is a flag and an environment variable: field
`some_name` is `--some-name` or `<PREFIX>_SOME_NAME`, and a flag wins over the
variable, which wins over the default. A bad value, from either, ends the
process with a usage error naming it. Booleans take true/false, 1/0 or yes/no.

This page is generated from the configuration dataclasses by `make gen`
(`tools/gen_config_docs.py`); a test fails while it differs from them.
"""


def _default(option: dataclasses.Field[Any]) -> Any:
    if option.default is not dataclasses.MISSING:
        return option.default
    if option.default_factory is not dataclasses.MISSING:
        return option.default_factory()
    raise TypeError(f"option {option.name!r} has no default")


def _shown(value: Any) -> str:
    # Strings as they are typed on a command line; "" stays visible.
    return (value or '""') if isinstance(value, str) else repr(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The whole page, as `make gen` writes it."""
    lines = [_INTRO]
    for title, command, prefix, config in SERVICES:
        lines += [f"## {title}", "", f"`{command} --help` lists the same options.", ""]
        lines += ["| flag | environment | default | meaning |", "|---|---|---|---|"]
        for option in dataclasses.fields(config):
            if not option.init:
                continue
            flag = "--" + option.name.replace("_", "-")
            env = f"{prefix}_{option.name.upper()}"
            meaning = _cell(str(option.metadata.get("help", "")))
            lines.append(f"| `{flag}` | `{env}` | `{_shown(_default(option))}` | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PAGE)
    parser.parse_args().out.write_text(render())


if __name__ == "__main__":
    main()
