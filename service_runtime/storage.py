"""The store a service keeps its state in, as its options choose."""

from pathlib import Path

from queues.storage import MemoryStore, Store
from queues.storage_sqlite import SqliteStore
from service_runtime.config import ServerOptions


def store_for(options: ServerOptions, name: str) -> Store:
    """An unopened store: <data_dir>/<name>.sqlite3, or memory if options say so."""
    if options.store == "memory":
        return MemoryStore()
    return SqliteStore(Path(options.data_dir) / f"{name}.sqlite3")
