"""The store a service keeps its state in, as its options choose."""

import contextlib
from pathlib import Path

from queues.storage import MemoryStore, Store
from queues.storage_sqlite import SqliteStore
from service_runtime.config import ServerOptions
from service_runtime.data_dir_lock import locked_data_dir


def store_for(options: ServerOptions, name: str) -> Store:
    """An unopened store: <data_dir>/<name>.sqlite3, or memory if options say so."""
    if options.store == "memory":
        return MemoryStore()
    return SqliteStore(Path(options.data_dir) / f"{name}.sqlite3")


def store_lock(options: ServerOptions, name: str) -> contextlib.AbstractContextManager[None]:
    """What to hold, from before store_for(options, name) is opened until it is
    closed: the data dir's lock of that store (data_dir_lock); none for memory."""
    if options.store == "memory":
        return contextlib.nullcontext()
    return locked_data_dir(Path(options.data_dir), name)
