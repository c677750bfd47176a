"""Exports the shop's users for ``latchkey users import``: one JSON object per line,
``{"username": ..., "password_hash": ..., "roles": [...]}``, the hash exactly as Werkzeug wrote
it (``scrypt:...`` or ``pbkdf2:sha256:...``), so that every user keeps their password.

    python before/export_users.py shop.db > users.jsonl
    latchkey users import users.jsonl
"""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Iterator, TextIO


def export_lines(database: str) -> Iterator[str]:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        for user in db.execute("SELECT username, password_hash, is_admin FROM users ORDER BY id"):
            roles = ["user", "admin"] if user["is_admin"] else ["user"]
            yield json.dumps(
                {"username": user["username"], "password_hash": user["password_hash"], "roles": roles}
            )
    finally:
        db.close()


def export(database: str, out: TextIO) -> int:
    count = 0
    for line in export_lines(database):
        out.write(line + "\n")
        count += 1
    return count


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: export_users.py DATABASE > users.jsonl")
    exported = export(sys.argv[1], sys.stdout)
    print(f"exported {exported} users", file=sys.stderr)
