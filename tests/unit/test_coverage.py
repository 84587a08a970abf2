import datetime as dt

import pytest

from quacknet import coverage
from quacknet.errors import InvalidInput

NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def test_a_bbox_is_geojsons_order_within_the_globe():
    assert coverage.parse_bbox("13.30,52.48,13.47,52.56") == coverage.BBox(13.30, 52.48, 13.47, 52.56)
    for bad, message in [(None, "required"), ("1,2,3", "four finite"), ("a,b,c,d", "four numbers"), ("1,2,3,nan", "four finite"),
                         ("13.5,52.5,13.3,52.6", "min < max"), ("170,0,190,1", "within ±180"), ("0,-95,1,0", "±90")]:
        with pytest.raises(InvalidInput, match=message):
            coverage.parse_bbox(bad)


def test_a_query_is_bounded_by_area_window_and_known_technologies():
    q = coverage.build_query("13.3,52.4,13.5,52.6", "2026-11-23T00:00:00Z", None, "LTE", now=NOW)
    assert (q.start, q.end, q.technology) == (dt.datetime(2026, 11, 23, tzinfo=dt.UTC), NOW, "LTE")
    for args, message in [
        (("0,0,3,3", "2026-11-29T00:00:00Z"), "9.00 square degrees; at most 4"),
        (("13,52,14,53", None), "since is required"),
        (("13,52,14,53", "yesterday"), "not an ISO 8601 time"),
        (("13,52,14,53", "2026-11-29T00:00:00"), "no timezone"),
        (("13,52,14,53", "2026-10-01T00:00:00Z"), "at most 31 days"),
        (("13,52,14,53", "2026-11-29T00:00:00Z", "2026-11-28T00:00:00Z"), "until must be after since"),
        (("13,52,14,53", "2026-11-29T00:00:00Z", None, "5G"), "technology must be one of"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            coverage.build_query(*args, now=NOW)


def test_cells_become_counter_clockwise_closed_polygons_in_lon_lat():
    clockwise = ((52.52, 13.39), (52.52, 13.41), (52.51, 13.41), (52.51, 13.39))  # (lat, lon), clockwise on a map
    cell = coverage.Cell("881f1d4895fffff", clockwise, {
        "LTE": coverage.TechnologyFigures(3, -97.0, 48000.0), "WIFI": coverage.TechnologyFigures(1, None, None)})
    query = coverage.build_query("13.3,52.4,13.5,52.6", "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z", now=NOW)
    doc = coverage.feature_collection([cell], query)
    [feature] = doc["features"]
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    assert all(13 < lon < 14 and 52 < lat < 53 for lon, lat in ring)
    area2 = sum((b[0] - a[0]) * (b[1] + a[1]) for a, b in zip(ring, ring[1:]))
    assert area2 < 0  # counter-clockwise, as RFC 7946 asks of exterior rings
    assert feature["properties"] == {"h3": "881f1d4895fffff", "resolution": 8, "scans": 4, "technologies": {
        "LTE": {"scans": 3, "median_rsrp_dbm": -97.0, "median_download_kbps": 48000.0},
        "WIFI": {"scans": 1, "median_rsrp_dbm": None, "median_download_kbps": None}}}
    assert doc["window"] == {"since": "2026-11-23T00:00:00Z", "until": "2026-11-30T00:00:00Z"}
