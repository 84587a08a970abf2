"""The operators' forms (DAG params) become plans or readable errors, without Airflow."""

import datetime as dt

import pytest

from quacknet import replay
from quacknet.errors import InvalidInput
from quacknet.ops import offsets


def test_replay_form_with_a_time_range():
    args = replay.plan_arguments({"start_time": "2026-11-26T12:00:00Z", "end_time": "2026-11-26T13:00:00+00:00",
                                  "partitions": [0, 2]})
    assert args["start_time"] == dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
    assert args["end_time"] - args["start_time"] == dt.timedelta(hours=1) and args["partitions"] == [0, 2]


def test_replay_form_with_offsets():
    assert replay.plan_arguments({"offsets": {"0": [5, 10], "3": [0, 1]}}) == {"offsets": {0: (5, 10), 3: (0, 1)}, "partitions": None}


@pytest.mark.parametrize("params,message", [
    ({}, "time range"),
    ({"start_time": "yesterday"}, "not an ISO 8601 time"),
    ({"start_time": "2026-11-26T12:00:00"}, "no timezone"),
    ({"offsets": {"0": [5]}}, r"must be \[start, end\]"),
])
def test_bad_replay_forms_fail_readably(params, message):
    with pytest.raises(InvalidInput, match=message):
        replay.plan_arguments(params)


def test_reset_forms():
    assert offsets.spec_from_params({"kind": "earliest"}) == offsets.ResetSpec("earliest")
    assert offsets.spec_from_params({"kind": "shift", "shift": -7}).shift == -7
    assert offsets.spec_from_params({"kind": "offsets", "offsets": {"1": 40}}).offsets == {1: 40}
    when = offsets.spec_from_params({"kind": "datetime", "datetime": "2026-11-26T12:00:00Z"}).when
    assert when == dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
    with pytest.raises(InvalidInput, match="timezone"):
        offsets.spec_from_params({"kind": "datetime", "datetime": "2026-11-26T12:00:00"})
    with pytest.raises(InvalidInput, match="unknown reset kind"):
        offsets.spec_from_params({"kind": "sideways"})
