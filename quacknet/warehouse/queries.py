"""Queries the platform ships. They read the exact view ``scans``, never the store."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client


@dataclass(frozen=True)
class CoverageCell:
    h3: int
    h3_hex: str
    technology: str
    scans: int
    median_rsrp: float | None
    median_download_kbps: float | None


def coverage(client: Client, database: str, start: dt.datetime, end: dt.datetime, min_scans: int = 1) -> list[CoverageCell]:
    """Per H3 cell (resolution 8) and technology, over [start, end) of observed time: how many
    scans, and the median RSRP and download speed (exact medians; NULLs are left out)."""
    result = client.query(
        f"""SELECT h3_r8, h3ToString(h3_r8), technology, count() AS scans,
                   quantileExactIf(0.5)(rsrp, rsrp IS NOT NULL), quantileExactIf(0.5)(download_kbps, download_kbps IS NOT NULL),
                   countIf(rsrp IS NOT NULL), countIf(download_kbps IS NOT NULL)
            FROM {database}.scans
            WHERE observed_at >= {{start:DateTime64(3, 'UTC')}} AND observed_at < {{end:DateTime64(3, 'UTC')}}
            GROUP BY h3_r8, technology HAVING scans >= {{min_scans:UInt64}}
            ORDER BY scans DESC, h3_r8, technology""",
        parameters={"start": start, "end": end, "min_scans": min_scans},
    )
    return [CoverageCell(h3, hexid, tech, n, rsrp if n_rsrp else None, down if n_down else None)
            for h3, hexid, tech, n, rsrp, down, n_rsrp, n_down in result.result_rows]
