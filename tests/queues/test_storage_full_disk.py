"""SqliteStore on a disk that really fills: a 16 MiB tmpfs, mounted for the test.

A max_page_count cap (test_storage.py) fails commits the way a full disk does,
but only a real one shows where the space goes: into the WAL, which a
checkpoint cannot move into the file while the file cannot grow."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from queues.storage import Put, StoreError
from queues.storage_sqlite import SqliteStore

_ROW = "x" * 4000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        # Lazy: a failed test may leave the store's file open on it.
        subprocess.run(["umount", "--lazy", str(disk)], check=True)


def fill(ballast: Path) -> None:
    with ballast.open("wb") as file:
        try:
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        except OSError:  # ENOSPC: the disk is full
            pass


def wal_size(path: Path) -> int:
    return path.with_name(path.name + "-wal").stat().st_size


async def test_space_freed_on_a_full_disk_goes_to_commits_not_to_an_old_wal(small_disk):
    path = small_disk / "s.db"
    store = SqliteStore(path)
    await store.open()
    ballast = small_disk / "ballast"
    fill(ballast)
    os.truncate(ballast, ballast.stat().st_size - 2_000_000)
    batch = 0
    with pytest.raises(StoreError, match="database or disk is full"):
        while True:  # until the disk is full: about 2 MB, all of it in the WAL
            await store.commit([Put("m", f"{batch}-{n}", _ROW) for n in range(50)])
            batch += 1
    # The checkpoint after the failure failed too: the file could not grow.
    assert wal_size(path) > 1_000_000

    os.truncate(ballast, ballast.stat().st_size - 4_000_000)  # 4 MB freed
    await store.commit([Put("m", "after-0", _ROW)])
    # The checkpoint owed since the failure ran after this commit: the WAL is empty.
    assert wal_size(path) == 0
    # 60 commits of 20 KB: before the owed checkpoint, the WAL grew back into
    # the space freed from its old 2 MB, and the 47th commit failed.
    for n in range(1, 61):
        await store.commit([Put("m", f"after-{n}-{k}", _ROW) for k in range(5)])
    assert len(await store.load("m")) == 50 * batch + 1 + 60 * 5
    await store.close()
