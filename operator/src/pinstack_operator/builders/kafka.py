"""Desired Kafka topics: what the environment's services use, plus any topic the spec overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pinstack_contracts.services import BY_NAME
from pinstack_operator.builders.spec import EnvironmentSpec


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    replication_factor: int | None
    config: Mapping[str, str] = field(default_factory=dict)


def topics(env: EnvironmentSpec) -> list[Topic]:
    kf = env.kafka
    names = {t for s in env.services for t in BY_NAME[s].topics} | {o.name for o in kf.topics}
    overrides = {o.name: o for o in kf.topics}
    out = []
    for base in sorted(names):
        o = overrides.get(base)
        config: dict[str, str] = {}
        retention = o.retention_ms if o and o.retention_ms is not None else kf.retention_ms
        if retention is not None:
            config["retention.ms"] = str(retention)
        if o:
            config.update(o.config)
        out.append(
            Topic(
                name=f"{kf.topic_prefix}{base}",
                partitions=o.partitions if o and o.partitions else kf.partitions,
                replication_factor=o.replication_factor if o and o.replication_factor else kf.replication_factor,
                config=dict(sorted(config.items())),
            )
        )
    return out


@dataclass(frozen=True)
class TopicChange:
    """What to do to one existing topic: add partitions, and/or set configs."""

    add_partitions_to: int | None
    set_config: Mapping[str, str]

    @property
    def empty(self) -> bool:
        return self.add_partitions_to is None and not self.set_config


def topic_change(desired: Topic, partitions: int, config: Mapping[str, str]) -> TopicChange:
    """Partitions only grow (a topic with more than desired is left alone); configs are kept in line."""
    grow = desired.partitions if desired.partitions > partitions else None
    drift = {k: v for k, v in desired.config.items() if config.get(k) != v}
    return TopicChange(grow, drift)
