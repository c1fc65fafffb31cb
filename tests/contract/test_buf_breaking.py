"""The contract's breaking-change check (`make lint`): buf breaking catches a
removed field and a renamed RPC, and tools/buf_breaking.sh compares against the
right earlier contract in a fresh clone, on a first commit, after a tag and in a
shallow clone."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "node_modules" / ".bin" / "buf"
SCRIPT = ROOT / "tools" / "buf_breaking.sh"
QUOTE_PROTO = Path("proto/quoteflow/quote/v1/quote_service.proto")
# Git as in a fresh clone on a bare machine: none of the user's configuration.
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def copy_module(to: Path) -> Path:
    """The buf workspace (buf.yaml and proto/) as it is in the work tree."""
    to.mkdir(parents=True)
    shutil.copy(ROOT / "buf.yaml", to / "buf.yaml")
    shutil.copytree(ROOT / "proto", to / "proto")
    return to


def edit_quote_proto(module: Path, old: str, new: str) -> None:
    path = module / QUOTE_PROTO
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {QUOTE_PROTO} exactly once"
    path.write_text(text.replace(old, new))


def remove_coverage_amount(module: Path) -> None:
    edit_quote_proto(module, "  int64 coverage_amount = 3;\n", "")


def add_a_field(module: Path) -> None:
    edit_quote_proto(
        module,
        "  int64 coverage_amount = 3;\n",
        "  int64 coverage_amount = 3;\n  // A note for the underwriter.\n  string note = 99;\n",
    )


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**GIT_ENV, "BUF": str(BUF)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def git(repo: Path, *args: str) -> None:
    done = run("git", *args, cwd=repo)
    assert done.returncode == 0, done.stderr


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)


def check(repo: Path) -> subprocess.CompletedProcess[str]:
    return run("bash", SCRIPT, cwd=repo)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose first commit is the contract as it is now."""
    module = copy_module(tmp_path / "repo")
    git(module, "init", "--quiet")
    commit(module, "the contract")
    return module


def test_buf_is_installed():
    assert BUF.exists(), "buf is missing: `make install` puts it in node_modules"


def test_a_removed_field_and_a_renamed_rpc_are_breaking(tmp_path):
    before = copy_module(tmp_path / "before")
    after = copy_module(tmp_path / "after")
    remove_coverage_amount(after)
    edit_quote_proto(after, "rpc GetStats(GetStatsRequest)", "rpc GetStatistics(GetStatsRequest)")

    done = run(BUF, "breaking", after, "--against", before, cwd=tmp_path)

    assert done.returncode != 0
    assert 'field "3" with name "coverage_amount" on message "Submission" was deleted' in (
        done.stdout
    )
    assert 'RPC "GetStats" on service "QuoteService" was deleted' in done.stdout


def test_an_added_field_is_not_breaking(tmp_path):
    before = copy_module(tmp_path / "before")
    after = copy_module(tmp_path / "after")
    add_a_field(after)

    done = run(BUF, "breaking", after, "--against", before, cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr


def test_a_first_commit_has_nothing_to_compare_against(repo):
    done = check(repo)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "HEAD is the first commit" in done.stdout


def test_a_fresh_clone_checks_its_commit_against_the_previous_one(repo, tmp_path):
    add_a_field(repo)
    commit(repo, "an additive change")
    remove_coverage_amount(repo)
    commit(repo, "a breaking change")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(repo), str(clone))

    done = check(clone)

    assert done.returncode != 0
    assert "against HEAD~1" in done.stdout
    assert '"coverage_amount" on message "Submission" was deleted' in done.stdout
    git(clone, "checkout", "--quiet", "HEAD~1")
    assert check(clone).returncode == 0


def test_after_a_tag_the_check_is_against_the_tag(repo):
    git(repo, "tag", "v1.0.0")
    remove_coverage_amount(repo)
    commit(repo, "a breaking change")
    (repo / "README.md").write_text("unrelated\n")
    commit(repo, "an unrelated change")

    done = check(repo)

    assert done.returncode != 0
    assert "against v1.0.0" in done.stdout
    assert '"coverage_amount" on message "Submission" was deleted' in done.stdout


def test_a_shallow_clone_without_the_previous_commit_fails_rather_than_skips(repo, tmp_path):
    (repo / "README.md").write_text("second\n")
    commit(repo, "a second commit")
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "--quiet", "--depth=1", f"file://{repo}", str(clone))

    done = check(clone)

    assert done.returncode != 0
    assert "shallow clone" in done.stderr
