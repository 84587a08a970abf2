from quacknet.units import human_bytes, human_count, human_duration, human_rate


def test_bytes_pick_the_unit_that_reads():
    assert human_bytes(609_280) == "595 KiB"  # not "0.00 GiB"
    assert [human_bytes(n) for n in (0, 1023, 1024, 5.06 * 2**30, 100 * 2**30, 2**20 - 1)] == [
        "0 B", "1023 B", "1.00 KiB", "5.06 GiB", "100 GiB", "1.00 MiB"]
    assert human_bytes(-2048) == "-2.00 KiB" and human_bytes(float("nan")) == "unknown"


def test_durations_counts_and_rates():
    assert [human_duration(s) for s in (0.25, 1.236, 42, 200, 3600, 18_420, 273_600)] == [
        "250 ms", "1.24 s", "42 s", "3 min 20 s", "1 h", "5 h 7 min", "3 d 4 h"]
    assert [human_count(n) for n in (0, 12_345, 999_999, 1_234_567, 10_000_000, 4.5e9)] == [
        "0", "12,345", "999,999", "1.23 M", "10 M", "4.50 G"]
    assert [human_rate(r, "scans") for r in (0, 0.5, 12.34, 1234)] == ["0 scans/s", "0.50 scans/s", "12.3 scans/s", "1.23 k scans/s"]
