"""Write google/rpc/error_details.proto, from the googleapis-common-protos that
grpcio-status depends on, under a proto root for buf: the console's page
decodes BadRequest, RetryInfo and ErrorInfo from the same definitions the
services encode them with (`make web` and the Dockerfile's build stage)."""

import argparse
import shutil
from importlib.resources import files
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path, help="the proto root to write google/rpc/ under")
    root = parser.parse_args().root
    target = root / "google" / "rpc"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(str(files("google.rpc") / "error_details.proto"), target)


if __name__ == "__main__":
    main()
