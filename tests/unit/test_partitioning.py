from tests.support.partitioning import murmur2, partition_for_key


def test_murmur2_matches_kafkas_reference_vectors():
    # From Kafka's UtilsTest.testMurmur2 (values there are signed Java ints).
    cases = {
        b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829, b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        bytes([ord("a"), ord("b"), ord("c")]): 479470107,
    }
    for data, java_int in cases.items():
        assert murmur2(data) == java_int & 0xFFFFFFFF, data


def test_partition_is_stable_and_in_range():
    parts = [partition_for_key(f"device-{i}".encode(), 6) for i in range(1000)]
    assert set(parts) == set(range(6))
    assert parts == [partition_for_key(f"device-{i}".encode(), 6) for i in range(1000)]
