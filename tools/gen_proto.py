"""Generate gen/ from proto/: messages, gRPC stubs and .pyi type stubs.

`make gen` writes into gen/; tests/test_generated_code.py writes into a temporary
directory and compares, so gen/ can never drift from proto/.
"""

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Replace out_dir with the code generated from every file under proto/."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--proto_path={well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(path.relative_to(PROTO_DIR)) for path in proto_files()),
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    # Regular packages (not namespace ones) so setuptools installs them.
    for package in sorted({p.parent for p in out_dir.rglob("*.py")}):
        while package != out_dir:
            (package / "__init__.py").touch()
            package = package.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "gen")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
