"""The sync's change message reads back as it was built, and a garbled one is told apart."""

from __future__ import annotations

import pytest

from urbis_core.changes import LayerChanged


@pytest.mark.parametrize(
    "change",
    [
        LayerChanged("addresses", 7, (148_000.5, 168_000.0, 149_000.0, 169_000.25)),
        LayerChanged("municipalities", 3, None),
        LayerChanged("addresses", None, None),
    ],
)
def test_a_change_reads_back_as_it_was_sent(change):
    assert LayerChanged.parse(change.payload()) == change


GARBLED = [
    "",
    "not json",
    "{}",
    "[1]",
    '{"layer": "a", "bbox": [1, 2]}',
    '{"layer": "a", "version": "seven"}',
]


@pytest.mark.parametrize("payload", GARBLED)
def test_a_garbled_message_is_one_kind_of_error(payload):
    # the listener empties the cache on a ValueError; anything else would stop it listening
    with pytest.raises(ValueError, match="unreadable change message"):
        LayerChanged.parse(payload)
