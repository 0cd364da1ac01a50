"""One migration mechanism for every service: numbered plain-SQL files applied in order.

`python -m pinstack_kit.migrate services/users/migrations` (DATABASE_URL from the environment).
Each file runs in its own transaction under an advisory lock, so several replicas starting at
once apply every file exactly once. Applied versions are recorded in `schema_migrations`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import sys
from pathlib import Path

import psycopg

from pinstack_kit.config import BaseServiceSettings

log = logging.getLogger("pinstack.migrate")

_LOCK_ID = 0x70696E73  # "pins": one advisory lock id per database is enough


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


KIT_MIGRATIONS = Path(__file__).parent / "migrations"


def migration_files(folder: Path) -> list[tuple[str, Path]]:
    """The kit's own tables (outbox, processed events) first, then the service's files."""
    files = [(f"kit-{f.name.split('_', 1)[0]}", f) for f in sorted(KIT_MIGRATIONS.glob("*.sql"))]
    files += [(f.name.split("_", 1)[0], f) for f in sorted(folder.glob("*.sql"))]
    versions = [v for v, _ in files]
    if len(set(versions)) != len(versions):
        raise SystemExit(f"duplicate migration numbers in {folder}: {versions}")
    return files


async def migrate(database_url: str, folder: Path) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    applied_now: list[str] = []
    async with await psycopg.AsyncConnection.connect(plain_dsn(database_url), autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            rows = await (await conn.execute("SELECT version, checksum FROM schema_migrations")).fetchall()
            done: dict[str, str] = dict(rows)
            for version, path in migration_files(folder):
                sql = path.read_text()
                checksum = hashlib.sha256(sql.encode()).hexdigest()
                if version in done:
                    if done[version] != checksum:
                        log.warning("migration %s changed after it was applied", path.name)
                    continue
                async with conn.transaction():
                    await conn.execute(sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (version, path.name, checksum),
                    )
                applied_now.append(path.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("folder", type=Path, help="the service's migrations folder")
    parser.add_argument("--database-url", help="defaults to $DATABASE_URL")
    args = parser.parse_args(argv)
    url = args.database_url or BaseServiceSettings().database_url
    if not url:
        print("DATABASE_URL is not set: export it or pass --database-url", file=sys.stderr)
        return 2
    if not args.folder.is_dir():
        print(f"no migrations folder at {args.folder}", file=sys.stderr)
        return 2
    applied = asyncio.run(migrate(url, args.folder))
    print(f"{args.folder}: applied {len(applied)} migration(s) {' '.join(applied)}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
