"""Coverage as analysts fetch it: H3 cells in a bounding box over a time window, as GeoJSON.

One query for the API (``GET /v1/coverage``), the CLI (``python -m quacknet coverage``) and the
operations page's map. Each cell (H3 resolution 8, about 0.74 km²) carries, per technology, its
scan count and the exact medians of RSRP and download speed; a scan belongs to the box when its
own position does. Requests are bounded so that one cannot make the warehouse scan the world:
the box's area, the window's length and the cells returned each have a limit (4 square degrees
hold about 40,000 cells at 52° N and 67,000 at the equator; the count is checked on the grouped
result), and going past one is an ``InvalidInput`` that names it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

from quacknet import params as p
from quacknet.errors import InvalidInput
from quacknet.scan import Technology
from quacknet.scan.model import STORED_FROM, STORED_UNTIL
from quacknet.warehouse.migrations import H3_RESOLUTION

MAX_AREA_DEG2 = 4.0  # a city and its surroundings (Berlin's box is about 0.4 x 0.4 degrees)
MAX_WINDOW = dt.timedelta(days=31)
MAX_CELLS = 20_000
MEDIA_TYPE = "application/geo+json"


@dataclass(frozen=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @property
    def area_deg2(self) -> float:
        return (self.max_lon - self.min_lon) * (self.max_lat - self.min_lat)


@dataclass(frozen=True)
class CoverageQuery:
    bbox: BBox
    start: dt.datetime
    end: dt.datetime
    technology: str | None = None


@dataclass(frozen=True)
class TechnologyFigures:
    scans: int
    median_rsrp_dbm: float | None
    median_download_kbps: float | None


@dataclass(frozen=True)
class Cell:
    h3: str
    boundary: tuple[tuple[float, float], ...]  # (lat, lon), as ClickHouse's h3ToGeoBoundary gives it
    technologies: dict[str, TechnologyFigures]

    @property
    def scans(self) -> int:
        return sum(t.scans for t in self.technologies.values())


def parse_bbox(text: str | None) -> BBox:
    """``minLon,minLat,maxLon,maxLat`` (GeoJSON's order), within the globe, not empty."""
    if not text:
        raise InvalidInput("bbox is required: minLon,minLat,maxLon,maxLat")
    parts = text.split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        raise InvalidInput(f"bbox must be four numbers minLon,minLat,maxLon,maxLat, got {text!r}") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidInput(f"bbox must be four finite numbers minLon,minLat,maxLon,maxLat, got {text!r}")
    box = BBox(*values)
    if not (-180 <= box.min_lon < box.max_lon <= 180 and -90 <= box.min_lat < box.max_lat <= 90):
        raise InvalidInput(f"bbox {text!r} must have min < max, longitudes within ±180 and latitudes within ±90")
    return box


def build_query(bbox: str | None, since: str | None, until: str | None = None, technology: str | None = None,
                now: dt.datetime | None = None) -> CoverageQuery:
    """A request's parameters as a bounded query (``InvalidInput`` names what is wrong)."""
    box = parse_bbox(bbox)
    if box.area_deg2 > MAX_AREA_DEG2:
        raise InvalidInput(f"bbox covers {box.area_deg2:.2f} square degrees; at most {MAX_AREA_DEG2:g} are served")
    if not since:
        raise InvalidInput("since is required (ISO 8601 with a timezone, e.g. 2026-11-23T00:00:00Z)")
    start = p.parse_time(since, "since")
    end = p.parse_time(until, "until") if until else (now or dt.datetime.now(dt.UTC))
    if end <= start:
        raise InvalidInput("until must be after since")
    if start < STORED_FROM or end > STORED_UNTIL:
        raise InvalidInput(f"since and until must lie within {STORED_FROM.year}..{STORED_UNTIL.year - 1}, "
                           "what the store keeps")
    if end - start > MAX_WINDOW:
        raise InvalidInput(f"the window is {end - start}; at most {MAX_WINDOW.days} days are served")
    if technology is not None and technology not in {t.value for t in Technology}:
        raise InvalidInput(f"technology must be one of {', '.join(t.value for t in Technology)}, got {technology!r}")
    return CoverageQuery(box, start.astimezone(dt.UTC), end.astimezone(dt.UTC), technology)


CELLS_SQL = """
SELECT h3ToString(h3_r8) AS h3, any(h3ToGeoBoundary(h3_r8)) AS boundary, technology, count() AS scans,
       quantileExactIf(0.5)(rsrp, rsrp IS NOT NULL), countIf(rsrp IS NOT NULL),
       quantileExactIf(0.5)(download_kbps, download_kbps IS NOT NULL), countIf(download_kbps IS NOT NULL)
FROM {db:Identifier}.scans
WHERE observed_at >= {start:DateTime64(3, 'UTC')} AND observed_at < {end:DateTime64(3, 'UTC')}
  AND lat >= {min_lat:Float64} AND lat <= {max_lat:Float64} AND lon >= {min_lon:Float64} AND lon <= {max_lon:Float64}
  AND ({technology:Nullable(String)} IS NULL OR technology = {technology:Nullable(String)})
GROUP BY h3_r8, technology
ORDER BY h3, technology
"""


def cells(client, database: str, query: CoverageQuery, max_cells: int | None = None) -> list[Cell]:
    """The cells of the box, each with its figures per technology; ``InvalidInput`` beyond ``max_cells``
    (``MAX_CELLS``). Medians are exact; of an even count, the upper of the two middle values
    (ClickHouse's ``quantileExact``); missing values are left out."""
    max_cells = max_cells or MAX_CELLS
    box = query.bbox
    result = client.query(CELLS_SQL, parameters={
        "db": database, "start": _ms(query.start), "end": _ms(query.end), "technology": query.technology,
        "min_lat": box.min_lat, "max_lat": box.max_lat, "min_lon": box.min_lon, "max_lon": box.max_lon,
        "limit": max_cells + 1})
    found: dict[str, Cell] = {}
    for h3, boundary, technology, scans, rsrp, n_rsrp, download, n_download in result.result_rows:
        cell = found.setdefault(h3, Cell(h3, tuple(tuple(point) for point in boundary), {}))
        cell.technologies[technology] = TechnologyFigures(int(scans), float(rsrp) if n_rsrp else None,
                                                          float(download) if n_download else None)
    if len(found) > max_cells:
        raise InvalidInput(f"the box holds more than {max_cells} cells with scans; narrow the box or the window")
    return list(found.values())


def feature_collection(found: Iterable[Cell], query: CoverageQuery) -> dict:
    """GeoJSON (RFC 7946): one Polygon feature per cell, rings counter-clockwise in [lon, lat]."""
    features = []
    for cell in found:
        ring = [[lon, lat] for lat, lon in cell.boundary]
        if _clockwise(ring):
            ring.reverse()
        ring.append(ring[0])
        features.append({
            "type": "Feature", "id": cell.h3,
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"h3": cell.h3, "resolution": H3_RESOLUTION, "scans": cell.scans, "technologies": {
                name: {"scans": t.scans, "median_rsrp_dbm": t.median_rsrp_dbm, "median_download_kbps": t.median_download_kbps}
                for name, t in sorted(cell.technologies.items())}},
        })
    box = query.bbox
    return {
        "type": "FeatureCollection",
        "bbox": [box.min_lon, box.min_lat, box.max_lon, box.max_lat],
        "window": {"since": _iso(query.start), "until": _iso(query.end)},
        "technology": query.technology,
        "features": features,
    }


def _ms(value: dt.datetime) -> str:
    """A bound as text with its milliseconds: the client would send a datetime cut to the second."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _clockwise(ring: list[list[float]]) -> bool:
    return sum((b[0] - a[0]) * (b[1] + a[1]) for a, b in zip(ring, ring[1:] + ring[:1])) > 0


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
