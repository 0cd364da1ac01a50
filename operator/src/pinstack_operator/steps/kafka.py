"""Kafka: create missing topics, grow partitions, keep the configs the spec sets in line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pinstack_operator.builders.kafka import Topic, topic_change

TOPIC_ALREADY_EXISTS = 36
UNKNOWN_TOPIC = 3


class KafkaError(RuntimeError):
    pass


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def _check(response: Any, what: str, ok: Sequence[int] = (0,)) -> None:
    for entry in getattr(response, "topic_errors", None) or getattr(response, "topic_error_codes", None) or ():
        code = entry[1]
        if code not in ok:
            raise KafkaError(f"{what} {entry[0]}: error code {code} {entry[2] if len(entry) > 2 else ''}")


async def _configs(client: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, tuple[str, bool]]]:
    """Topic -> config name -> (value, is_default)."""
    if not names:
        return {}
    responses = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    out: dict[str, dict[str, tuple[str, bool]]] = {}
    for response in responses:
        for resource in response.resources:
            entries = resource[4]
            # v1+: (name, value, read_only, config_source, is_sensitive, synonyms); source 1 = topic override.
            out[resource[3]] = {e[0]: (e[1], e[3] != 1) for e in entries}
    return out


def _new_topic(t: Topic) -> NewTopic:
    if t.replication_factor:
        return NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=dict(t.config))
    # -1: the broker's default.replication.factor (aiokafka wants an explicit empty assignment then).
    return NewTopic(t.name, t.partitions, -1, replica_assignments={}, topic_configs=dict(t.config))


async def ensure_topics(bootstrap: str, topics: list[Topic]) -> list[str]:
    changes: list[str] = []
    async with admin_client(bootstrap) as client:
        # Describe only topics that exist: a metadata request for a missing topic may auto-create it
        # (auto.create.topics.enable) with the broker's defaults.
        present = set(await client.list_topics())
        wanted = [t.name for t in topics if t.name in present]
        described = {t["topic"]: t for t in await client.describe_topics(wanted)} if wanted else {}
        missing = [t for t in topics if described.get(t.name, {}).get("error_code", UNKNOWN_TOPIC) != 0]
        if missing:
            response = await client.create_topics([_new_topic(t) for t in missing])
            _check(response, "create topic", ok=(0, TOPIC_ALREADY_EXISTS))
            changes += [f"created topic {t.name} ({t.partitions} partitions)" for t in missing]
        existing = [t for t in topics if t not in missing]
        configs = await _configs(client, [t.name for t in existing])
        grow: dict[str, NewPartitions] = {}
        for t in existing:
            current = configs.get(t.name, {})
            change = topic_change(t, len(described[t.name]["partitions"]), {k: v[0] for k, v in current.items()})
            if change.add_partitions_to:
                grow[t.name] = NewPartitions(change.add_partitions_to)
                changes.append(f"grew topic {t.name} to {change.add_partitions_to} partitions")
            if change.set_config:
                # AlterConfigs replaces every topic override: send the ones kept plus the desired.
                overrides = {k: v[0] for k, v in current.items() if not v[1]}
                overrides.update(change.set_config)
                responses = await client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t.name, overrides)])
                for response in responses:
                    for resource in getattr(response, "resources", ()):
                        if resource[0] != 0:
                            raise KafkaError(f"alter configs of {t.name}: {resource[1]}")
                changes.append(
                    f"set {', '.join(f'{k}={v}' for k, v in sorted(change.set_config.items()))} on topic {t.name}"
                )
        if grow:
            _check(await client.create_partitions(grow), "grow partitions of")
    return changes


async def delete_topics(bootstrap: str, names: list[str]) -> list[str]:
    async with admin_client(bootstrap) as client:
        present = set(await client.list_topics())
        doomed = [n for n in names if n in present]
        if doomed:
            await client.delete_topics(doomed)
            await asyncio.sleep(0)
        return [f"deleted topic {n}" for n in doomed]
