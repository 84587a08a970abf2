import stat

import pytest

from quacknet import apikeys
from quacknet.spool import Spool, SpoolFull


def test_spooled_messages_survive_reopening_and_leave_only_when_done(tmp_path):
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path, max_messages=100)
    assert spool.add([("t", b"k1", b"v1"), ("t", None, b"v2")], "timeout") == 2
    spool.close()
    spool = Spool(path, max_messages=100)
    rows = spool.claim(10)
    assert [(r.topic, r.key, r.value) for r in rows] == [("t", b"k1", b"v1"), ("t", None, b"v2")]
    assert spool.claim(10) == []  # claimed rows are not handed out twice
    spool.release([rows[1].id])
    spool.done([rows[0].id])
    assert spool.depth() == 1
    assert [r.value for r in spool.claim(10)] == [b"v2"]


def test_two_workers_never_claim_the_same_row(tmp_path):
    a, b = Spool(tmp_path / "s", 1000), Spool(tmp_path / "s", 1000)
    a.add([("t", None, str(i).encode()) for i in range(100)], "timeout")
    got_a, got_b = a.claim(60), b.claim(60)
    assert len(got_a) == 60 and len(got_b) == 40
    assert not {r.id for r in got_a} & {r.id for r in got_b}


def test_a_silent_claimer_loses_its_claim(tmp_path):
    a, b = Spool(tmp_path / "s", 10, claim_timeout_s=0), Spool(tmp_path / "s", 10, claim_timeout_s=0)
    a.add([("t", None, b"x")], "timeout")
    assert len(a.claim(1)) == 1 and len(b.claim(1)) == 1


def test_the_spool_is_bounded(tmp_path):
    spool = Spool(tmp_path / "s", max_messages=3)
    spool.add([("t", None, b"1"), ("t", None, b"2")], "timeout")
    with pytest.raises(SpoolFull):
        spool.add([("t", None, b"3"), ("t", None, b"4")], "timeout")
    assert spool.depth() == 2  # all or nothing


def test_api_keys_are_stored_hashed(tmp_path):
    path = tmp_path / "keys.json"
    key = apikeys.add_key(path, "phone-app", {apikeys.SCOPE_WRITE_SCANS}, 100)
    assert key not in path.read_text() and apikeys.digest(key) in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store = apikeys.KeyStore.load(path)
    found = store.lookup(key)
    assert found.name == "phone-app" and found.rate_per_s == 100 and apikeys.SCOPE_WRITE_SCANS in found.scopes
    assert store.lookup(key + "x") is None and store.lookup(None) is None
