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


@pytest.mark.parametrize("params,message", [
    ({"offsets": {"0": "59"}}, r'offsets\["0"\] must be \[start, end\]'),  # was planned as the range [5, 9)
    ({"offsets": {"0": [1.9, 3.7]}}, r'offsets\["0"\] start must be an integer, got 1.9'),  # was truncated to [1, 3)
    ({"offsets": {"0": [True, 3]}}, "must be an integer"),
    ({"offsets": {"0": [0, 5]}, "partitions": [0, 2]}, r"partitions \[2\] .* no range in offsets"),  # was KeyError: '0'
    ({"offsets": {"0": [-5, 3]}}, "must be at least 0, got -5"),  # was "deleted by retention"
    ({"offsets": {"x": [0, 3]}}, "partition keys must be non-negative integers"),
    ({"offsets": {"0": [0, 3]}, "partitions": [1.5]}, r"partitions\[0\] must be an integer"),
    ({"offsets": {"0": [0, 3]}, "partitions": [0, 0]}, "lists a partition twice"),
    ({"start_time": "2026-11-26T12:00:00Z", "offsets": {"0": [0, 3]}}, "not both"),
    ({"end_time": "2026-11-26T12:00:00Z"}, "end_time needs a start_time"),
    ({"start_time": 1764158400}, "must be an ISO 8601 time"),
])
def test_replay_parameters_are_strict(params, message):
    with pytest.raises(InvalidInput, match=message):
        replay.plan_arguments(params)


@pytest.mark.parametrize("params,message", [
    ({"kind": "offsets", "offsets": {"0": "59"}}, "must be an integer"),
    ({"kind": "offsets", "offsets": {"0": 1.9}}, "must be an integer"),
    ({"kind": "offsets", "offsets": {"0": -5}}, "must be at least 0, got -5"),
    ({"kind": "shift", "shift": "3"}, "shift must be an integer"),
    ({"kind": "datetime", "datetime": None}, "must be an ISO 8601 time"),
])
def test_reset_parameters_are_strict(params, message):
    with pytest.raises(InvalidInput, match=message):
        offsets.spec_from_params(params)


def test_a_reset_of_partitions_without_offsets_is_refused_before_kafka_is_asked():
    spec = offsets.spec_from_params({"kind": "offsets", "offsets": {"0": 5}})
    with pytest.raises(InvalidInput, match=r"partitions \[3\] have no offset"):
        offsets.plan(None, "group", "topic", spec, partitions=[0, 3])
