"""Who owns what on the shared servers, so two environments never provision the same names.

An environment is identified by "<namespace>/<name>" (not its uid: an environment deleted with
deletionPolicy Retain and created again under the same name takes its data back).

Where the claim is recorded, and why there:
- PostgreSQL: a COMMENT on the database ("pinstack.io/owner=<namespace>/<name>"). It lives with
  the data, survives an operator restart or a second operator on another cluster, and an admin
  can read or clear it with plain SQL (`COMMENT ON DATABASE x IS NULL` releases a claim).
- Redis: a marker key "pinstack-operator:owner:<ACL user>" holding the owner, outside every key
  prefix the operator hands out, so no service can overwrite it. ACL users carry no metadata.
- Kafka: topics carry no free-form metadata either (their configs are validated), so the
  topic prefix is claimed through the PinstackEnvironments themselves: among live environments
  on the same bootstrap servers with the same topic prefix, the oldest one owns it (Strimzi's
  rule). This needs the operator to see every namespace (the default, --all-namespaces).
- A database's login role carries the same COMMENT, written in the transaction that creates it.

A database, role or ACL user that already exists and records no owner was not made for this
environment (by hand, by `make up`, by another tool): it is refused (Conflict) and never written
to or dropped. The one exception is what a crash can leave: a database without its COMMENT yet,
owned by a role claimed for this environment, and a role without its COMMENT whose database is
claimed (made by an older operator). A Kafka topic prefix that nobody claims is taken by the
first environment that provisions it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

COMMENT_PREFIX = "pinstack.io/owner="
REDIS_MARKER_PREFIX = "pinstack-operator:owner:"


class Conflict(RuntimeError):
    """Another environment owns a name this one wants."""


def owner_id(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def database_comment(owner: str) -> str:
    return f"{COMMENT_PREFIX}{owner}"


def comment_owner(comment: str | None) -> str | None:
    """The owner a database COMMENT records, or None when it records none."""
    if comment and comment.startswith(COMMENT_PREFIX):
        return comment.removeprefix(COMMENT_PREFIX)
    return None


@dataclass(frozen=True)
class DatabaseFound:
    """What the server holds under one database's names; `*_claim`: the owner its COMMENT records."""

    database: str
    role: str
    database_exists: bool = False
    database_claim: str | None = None
    database_owner_claim: str | None = None  # the claim of the role that owns the database
    role_exists: bool = False
    role_claim: str | None = None


def database_conflict(found: DatabaseFound, me: str) -> str | None:
    """Why `me` may not provision (or drop) this database and role; None when they are its own."""
    db, role = found.database, found.role
    if found.database_claim not in (None, me):
        return f"database {db} belongs to {found.database_claim}"
    if found.role_claim not in (None, me):
        return f"role {role} belongs to {found.role_claim}"
    if found.database_exists and found.database_claim is None and found.database_owner_claim != me:
        return (
            f"database {db} exists but was not made for {me}: "
            f"COMMENT ON DATABASE \"{db}\" IS '{database_comment(me)}' hands it over"
        )
    if found.role_exists and found.role_claim is None and found.database_claim != me:
        return (
            f"role {role} exists but was not made for {me}: "
            f"COMMENT ON ROLE \"{role}\" IS '{database_comment(me)}' hands it over"
        )
    return None


def redis_marker(username: str) -> str:
    return f"{REDIS_MARKER_PREFIX}{username}"


def kafka_prefix_owner(me: Mapping[str, Any], environments: Iterable[Mapping[str, Any]]) -> str | None:
    """The owner of `me`'s topic prefix when it is another environment; None when `me` owns it.

    Bodies are PinstackEnvironment objects; those being deleted no longer claim anything."""

    def claim(body: Mapping[str, Any]) -> tuple[str, str]:
        kafka = (body.get("spec") or {}).get("kafka") or {}
        return kafka.get("bootstrapServers", ""), kafka.get("topicPrefix", "")

    def age(body: Mapping[str, Any]) -> tuple[str, str]:
        meta = body["metadata"]
        return meta.get("creationTimestamp") or "", owner_id(meta.get("namespace", ""), meta["name"])

    mine = claim(me)
    rivals = [
        b
        for b in environments
        if claim(b) == mine and not b["metadata"].get("deletionTimestamp") and age(b)[1] != age(me)[1]
    ]
    older = sorted((b for b in rivals if age(b) < age(me)), key=age)
    return age(older[0])[1] if older else None
