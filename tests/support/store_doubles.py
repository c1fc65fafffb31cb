"""A SqliteStore made to fail its commits as a full disk would."""

from queues.storage_sqlite import SqliteStore


async def cap_pages(store: SqliteStore, pages: int | None = None) -> None:
    """Let an open SqliteStore's file grow to `pages` pages (None: no more than it
    has), as a full disk would; SQLite raises a cap below the file's size to its size."""
    assert store._connection is not None
    await store._run(store._connection.execute, f"PRAGMA max_page_count={pages or 1}")
