"""A stand-in for confluent_kafka.Message: the parts the decoder, the batch and the loader read."""

from __future__ import annotations


class Message:
    def __init__(self, value: bytes | None, partition: int = 0, offset: int = 0, topic: str = "scans"):
        self._value, self._partition, self._offset, self._topic = value, partition, offset, topic

    def error(self):
        return None

    def value(self):
        return self._value

    def key(self):
        return b"k"

    def topic(self):
        return self._topic

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset
