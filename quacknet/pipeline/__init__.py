"""The one pipeline of both drivers, the loader and replays:
decode -> validate (``decode``) -> batch (``batch``) -> store -> dead-letter (``sink``) -> commit
(the driver's own: the loader commits its group's offsets, a replay commits nothing)."""

from quacknet.pipeline.batch import Batch
from quacknet.pipeline.decode import Poison, decode_message
from quacknet.pipeline.sink import LEDGER_COLUMNS, Sink, dead_letter_headers

__all__ = ["LEDGER_COLUMNS", "Batch", "Poison", "Sink", "dead_letter_headers", "decode_message"]
