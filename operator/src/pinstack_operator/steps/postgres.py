"""PostgreSQL: a role with the generated password and a database owned by it (and, after a
credential rotation, the role's alternate login: builders/postgres.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pinstack_operator.builders.ownership import (
    Conflict,
    DatabaseFound,
    comment_owner,
    database_comment,
    database_conflict,
)
from pinstack_operator.builders.postgres import Database
from pinstack_operator.conditions import ROTATION_DONE


@dataclass(frozen=True)
class Admin:
    host: str
    port: int
    user: str
    password: str
    sslmode: str
    dbname: str = "postgres"

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            sslmode=self.sslmode,
            dbname=self.dbname,
            autocommit=True,
            connect_timeout=10,
        )


def password_matches(stored: str | None, role: str, password: str) -> bool:
    """Whether pg_authid.rolpassword (SCRAM-SHA-256 or md5) is this password."""
    if not stored:
        return False
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", stored)
    if m:
        iterations, salt, stored_key = int(m[1]), base64.b64decode(m[2]), base64.b64decode(m[3])
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)
    if stored.startswith("md5"):
        return hmac.compare_digest(stored, "md5" + hashlib.md5((password + role).encode()).hexdigest())  # noqa: S324
    return False


async def _found(conn: psycopg.AsyncConnection[Any], db: Database) -> DatabaseFound:
    cur = await conn.execute(
        "SELECT d.oid IS NOT NULL, shobj_description(d.oid, 'pg_database'), shobj_description(d.datdba, 'pg_authid'),"
        " r.oid IS NOT NULL, shobj_description(r.oid, 'pg_authid')"
        " FROM (SELECT 1) AS one"
        " LEFT JOIN pg_database d ON d.datname = %s LEFT JOIN pg_roles r ON r.rolname = %s",
        (db.name, db.role),
    )
    row = await cur.fetchone()
    assert row is not None  # one row, whatever exists
    return DatabaseFound(
        db.name,
        db.role,
        database_exists=row[0],
        database_claim=comment_owner(row[1]),
        database_owner_claim=comment_owner(row[2]),
        role_exists=row[3],
        role_claim=comment_owner(row[4]),
    )


async def foreign_owners(admin: Admin, dbs: list[Database], owner: str) -> list[str]:
    """Read only: why `owner` may not have each database (another environment's, or not made for it)."""
    async with await admin.connect() as conn:
        found = [await _found(conn, db) for db in dbs]
    return [why for f in found if (why := database_conflict(f, owner)) is not None]


@dataclass(frozen=True)
class _Role:
    can_login: bool
    password: str | None  # pg_authid.rolpassword; None when the admin may not read it
    readable: bool


async def _role(conn: psycopg.AsyncConnection[Any], name: str) -> _Role | None:
    try:
        cur = await conn.execute("SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s", (name,))
        row = await cur.fetchone()
        readable = True
    except psycopg.errors.InsufficientPrivilege:
        cur = await conn.execute("SELECT rolcanlogin, NULL FROM pg_roles WHERE rolname = %s", (name,))
        row = await cur.fetchone()
        readable = False
    return None if row is None else _Role(row[0], row[1], readable)


async def _ensure_login(conn: psycopg.AsyncConnection[Any], name: str, found: _Role, password: str) -> list[str]:
    if found.can_login and not (found.readable and not password_matches(found.password, name, password)):
        return []
    await conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
    return [f"reset login and password of role {name}"]


async def ensure_database(
    admin: Admin, db: Database, login: str, password: str, claimant: str, *, retire: bool = True
) -> list[str]:
    """The role, the database it owns, and `login` (the role or its alternate) logging in with
    `password`. `retire`: the other login stops logging in (a rotation's pods have all moved on);
    until then it keeps its password, so pods that have not restarted yet still connect."""
    changes: list[str] = []
    async with await admin.connect() as conn:
        # One environment at a time per database name (across operators): the ownership check
        # and the claim below cannot interleave with another environment's.
        await conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"pinstack.io/database/{db.name}",))
        found = await _found(conn, db)
        if (why := database_conflict(found, claimant)) is not None:
            raise Conflict(why)
        role = sql.Identifier(db.role)
        claim = sql.Literal(database_comment(claimant))
        main = await _role(conn, db.role)
        if main is None:
            async with conn.transaction():  # the role with its claim: a crash leaves neither
                await conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(password)))
                await conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(role, claim))
            changes.append(f"created role {db.role}")
        else:
            if login == db.role:
                changes += await _ensure_login(conn, db.role, main, password)
            if found.role_claim != claimant:  # the role of a database claimed before roles were
                await conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(role, claim))
                changes.append(f"claimed role {db.role} for {claimant}")
        if login == db.alternate:
            alternate = await _role(conn, db.alternate)
            if alternate is None:
                name = sql.Identifier(db.alternate)
                async with conn.transaction():
                    await conn.execute(
                        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(name, sql.Literal(password), role)
                    )
                    # its sessions act as the role: tables its migrations create belong to the role
                    await conn.execute(sql.SQL("ALTER ROLE {} SET role = {}").format(name, sql.Literal(db.role)))
                    await conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(name, claim))
                changes.append(f"created role {db.alternate} (logs in as {db.role})")
            else:
                changes += await _ensure_login(conn, db.alternate, alternate, password)
        if retire:
            other = db.other_login(login)
            old = await _role(conn, other)
            if old is not None and old.can_login:
                await conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(sql.Identifier(other)))
                changes.append(f"{ROTATION_DONE}switched off the login of role {other}")
        cur = await conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
            (db.name,),
        )
        owner = await cur.fetchone()
        name = sql.Identifier(db.name)
        if owner is None:
            await conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, role))
            changes.append(f"created database {db.name}")
        elif owner[0] != db.role:
            await conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(name, role))
            changes.append(f"made {db.role} the owner of database {db.name}")
        if found.database_claim != claimant:  # new, or made just before a crash
            await conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
            await conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(name, claim))
            if found.database_exists:
                changes.append(f"claimed database {db.name} for {claimant}")
    return changes


async def drop_database(admin: Admin, db: Database, owner: str) -> list[str]:
    """Drops the database and its role when they are `owner`'s (never what was not made for it)."""
    changes: list[str] = []
    async with await admin.connect() as conn:
        found = await _found(conn, db)
        if database_conflict(found, owner) is not None:
            return []
        if found.database_exists:
            await conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db.name)))
            changes.append(f"dropped database {db.name}")
        if await _role(conn, db.alternate) is not None:  # a member of the role: made with it
            await conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(db.alternate)))
            changes.append(f"dropped role {db.alternate}")
        if found.role_exists:
            await conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(db.role)))
            changes.append(f"dropped role {db.role}")
    return changes
