"""What each service may do on the cluster: the ACLs, declared in one place and applied idempotently.

A broker with an authorizer (StandardAuthorizer, ``allow.everyone.if.no.acl.found=false``) lets a
principal do only what an ACL allows it; these are QuackNet's, one principal per service:

- the API (``kafka_api_principal``) writes the scans topic;
- the loader (``kafka_loader_principal``) reads the scans topic, commits its group's offsets and writes
  the dead-letter topic;
- Airflow's tasks (``kafka_airflow_principal``) administer the owned topics (create, grow, alter their
  configs, reassign their replicas), read them and write the dead-letter topic (replays), read and
  commit any group's offsets (replay and audit consumers, offset resets) and describe the cluster
  (DescribeLogDirs, DescribeCluster, DescribeQuorum, partition reassignments).

Idempotent producers need no IDEMPOTENT_WRITE on the cluster since Kafka 3.0 (KIP-679): WRITE on a
topic is enough. ``apply`` runs as an operator's principal (a super user); ``python -m quacknet
kafka-acls`` and the local stack call it.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from quacknet.settings import Settings

CLUSTER = "kafka-cluster"
# confluent-kafka calls Kafka's CLUSTER resource type (4) BROKER
_RESOURCE = {"TOPIC": ResourceType.TOPIC, "GROUP": ResourceType.GROUP, "CLUSTER": ResourceType.BROKER}
_NAME = {v: k for k, v in _RESOURCE.items()}
ANY_GROUP = "*"
OFFSETS_TOPIC = "__consumer_offsets"


@dataclass(frozen=True, order=True)
class Grant:
    principal: str  # User:<name>
    resource: str  # TOPIC | GROUP | CLUSTER
    name: str
    operation: str  # READ, WRITE, DESCRIBE, ... (AclOperation's names)

    def binding(self) -> AclBinding:
        return AclBinding(_RESOURCE[self.resource], self.name, ResourcePatternType.LITERAL, self.principal, "*",
                          AclOperation[self.operation], AclPermissionType.ALLOW)

    def __str__(self) -> str:
        return f"{self.principal} {self.operation} {self.resource.lower()} {self.name}"


def grants(settings: Settings) -> list[Grant]:
    """Every ACL the settings' services need (their topics and the loader's group), least first."""
    api, loader, airflow = (f"User:{p}" for p in (settings.kafka_api_principal, settings.kafka_loader_principal,
                                                   settings.kafka_airflow_principal))
    scans, dlq = settings.scans_topic, settings.dlq_topic
    out = [Grant(api, "TOPIC", scans, op) for op in ("WRITE", "DESCRIBE")]
    out += [Grant(loader, "TOPIC", scans, op) for op in ("READ", "DESCRIBE")]
    out += [Grant(loader, "GROUP", settings.loader_group, "READ")]
    out += [Grant(loader, "TOPIC", dlq, op) for op in ("WRITE", "DESCRIBE")]
    owned = ("CREATE", "ALTER", "ALTER_CONFIGS", "DESCRIBE", "DESCRIBE_CONFIGS", "READ")
    out += [Grant(airflow, "TOPIC", topic, op) for topic in (scans, dlq) for op in owned]
    out += [Grant(airflow, "TOPIC", dlq, "WRITE")]
    out += [Grant(airflow, "TOPIC", OFFSETS_TOPIC, op) for op in ("DESCRIBE", "DESCRIBE_CONFIGS")]
    out += [Grant(airflow, "GROUP", ANY_GROUP, op) for op in ("READ", "DESCRIBE")]
    out += [Grant(airflow, "CLUSTER", CLUSTER, op) for op in ("DESCRIBE", "ALTER")]
    return out


def current(admin: AdminClient, principals: list[str], timeout: float = 30) -> set[Grant]:
    """The ALLOW ACLs on literal resources the cluster holds now for ``principals``."""
    found = set()
    for principal in principals:
        query = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                                 AclOperation.ANY, AclPermissionType.ANY)
        for b in admin.describe_acls(query).result(timeout=timeout):
            if b.permission_type == AclPermissionType.ALLOW and b.resource_pattern_type == ResourcePatternType.LITERAL:
                found.add(Grant(b.principal, _NAME.get(b.restype, b.restype.name), b.name, b.operation.name))
    return found


def apply(admin: AdminClient, wanted: list[Grant], timeout: float = 30) -> list[Grant]:
    """Create the ACLs of ``wanted`` that the cluster lacks; returns them (nothing: all were there)."""
    missing = sorted(set(wanted) - current(admin, sorted({g.principal for g in wanted}), timeout))
    if missing:
        for future in admin.create_acls([g.binding() for g in missing], request_timeout=timeout).values():
            future.result(timeout=timeout)
    return missing


def revoke(admin: AdminClient, grants_: list[Grant], timeout: float = 30) -> None:
    """Delete exactly these ACLs (a test's grants on its own topics)."""
    filters = [AclBindingFilter(_RESOURCE[g.resource], g.name, ResourcePatternType.LITERAL, g.principal, "*",
                                AclOperation[g.operation], AclPermissionType.ALLOW) for g in grants_]
    for future in admin.delete_acls(filters, request_timeout=timeout).values():
        future.result(timeout=timeout)
