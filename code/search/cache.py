"""A per-query cache of search replies in one SQLite file, so a query is never paid for twice.

Keys are a hash of everything that shapes the reply (endpoint, query, country, language);
values are the reply JSON. The API key is never part of either. Each put is committed
at once, so an interrupted run keeps the replies it received.
"""

import hashlib
import json
import os
import sqlite3

from realign.errors import DataError
from realign.files import check_not_link, os_error


def cache_key(*parts):
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


class QueryCache:
    def __init__(self, path):
        self.path = path
        self.hits = 0
        check_not_link(path)  # never written through a link planted beside the output
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30)
            # WAL with NORMAL sync: a commit no longer waits for the disk, yet a crash loses at most
            # the last few replies, never the file.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")
            self._db.commit()
        except (sqlite3.Error, OSError) as e:
            raise self._error(e) from None

    def _error(self, e):
        """Disk full, read-only, a folder or not a database: one line naming the cache file."""
        if isinstance(e, OSError):
            return os_error(e, self.path)
        return DataError(f"{self.path}: search cache unusable ({e}); free space, fix its permissions, "
                         f"or pass another --cache_path")

    def get(self, key):
        row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key, reply):
        try:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?)", (key, json.dumps(reply, ensure_ascii=False)))
            self._db.commit()
        except sqlite3.Error as e:
            raise self._error(e) from None

    def close(self):
        self._db.close()
