"""Queries the platform ships about scans' copies (coverage is ``quacknet.coverage``). They read the exact
view ``scans`` and the copies' lineage, never the store."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client


@dataclass(frozen=True)
class StoredCopy:
    """One message that carried a scan and was stored (``scan_copies``)."""

    received_at: dt.datetime
    device_id: str
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    content_hash: int
    kept: bool  # this copy is the scan's row in the exact view


@dataclass(frozen=True)
class ScanLineage:
    scan_id: uuid.UUID
    copies: list[StoredCopy]  # every stored message of the scan, in the store's version order (the kept one last)

    @property
    def superseded_differing(self) -> int:
        """Copies the kept row superseded whose contents differed from it or from each other."""
        return len({c.content_hash for c in self.copies}) - 1 if self.copies else 0


def lineage(client: Client, database: str, scan_id: uuid.UUID | str) -> ScanLineage:
    """Every stored copy of one scan and which of them the exact view holds (two lookups by scan_id)."""
    ident = {"id": str(scan_id)}
    kept = {tuple(r) for r in client.query(f"SELECT kafka_topic, kafka_partition, kafka_offset FROM {database}.scans "
                                           "WHERE scan_id = {id:UUID}", parameters=ident).result_rows}
    rows = client.query(
        f"""SELECT received_at, device_id, kafka_topic, kafka_partition, kafka_offset, content_hash
            FROM {database}.scan_copies FINAL WHERE scan_id = {{id:UUID}}
            ORDER BY received_at, kafka_partition, kafka_offset""", parameters=ident).result_rows
    return ScanLineage(uuid.UUID(str(scan_id)), [
        StoredCopy(at.replace(tzinfo=dt.UTC), device, topic, partition, offset, digest, (topic, partition, offset) in kept)
        for at, device, topic, partition, offset, digest in rows])


@dataclass(frozen=True)
class ConflictingDevice:
    device_id: str
    scans: int  # scans of this device (by their kept copy) with copies of different contents
    superseded_differing: int


def conflicting_devices(client: Client, database: str, since: dt.datetime | None = None,
                        limit: int = 100) -> list[ConflictingDevice]:
    """The phones that sent conflicting copies (same scan_id, other contents), most copies first;
    ``since``: scans with a copy received since then. Reads all of ``scan_copies``: an operator's query."""
    result = client.query(
        f"""SELECT device_id, count(), sum(contents - 1) AS superseded FROM (
                SELECT argMax(device_id, (received_at, kafka_partition, kafka_offset)) AS device_id,
                       uniqExact(content_hash) AS contents, max(received_at) AS last
                FROM {database}.scan_copies FINAL GROUP BY scan_id
                HAVING contents > 1 AND last >= {{since:DateTime64(3, 'UTC')}})
            GROUP BY device_id ORDER BY superseded DESC, device_id LIMIT {{limit:UInt32}}""",
        parameters={"since": since or dt.datetime(2000, 1, 1, tzinfo=dt.UTC), "limit": limit})
    return [ConflictingDevice(device, int(scans), int(superseded)) for device, scans, superseded in result.result_rows]
