"""What the bench ran on: the machine, its load, and the versions that matter."""

import os
import platform
import sys
from importlib import metadata
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]

PACKAGES = (
    "grpcio",
    "protobuf",
    "arq",
    "redis",
    "dramatiq",
    "procrastinate",
    "psycopg",
    "uvloop",
    "pyinstrument",
    "psutil",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, Any]:
    return {
        "os": f"{platform.system()} {platform.release()}",
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "versions": {package: _version(package) for package in PACKAGES},
    }
