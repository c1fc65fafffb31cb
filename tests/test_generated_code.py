"""gen/ is exactly what proto/ generates: nobody edits it by hand, and it never drifts."""

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _files(root: Path) -> set[Path]:
    return {
        p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }


def test_gen_matches_what_proto_generates(tmp_path: Path) -> None:
    fresh = tmp_path / "gen"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_proto.py"), "--out", str(fresh)], check=True
    )
    committed = ROOT / "gen"
    assert _files(committed) == _files(fresh), "run `make gen`: files differ"
    differing = [
        str(path)
        for path in sorted(_files(fresh))
        if not filecmp.cmp(committed / path, fresh / path, shallow=False)
    ]
    assert differing == [], f"run `make gen`: content differs in {differing}"
