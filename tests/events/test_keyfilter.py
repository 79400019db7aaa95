"""KeyFilter: a key once added is always found; few keys never added are."""

from __future__ import annotations

import uuid

from aiflow_nb.events.keyfilter import KeyFilter


def test_every_added_key_is_found_and_few_others_are() -> None:
    keys = KeyFilter(50_000)
    added = [uuid.uuid4().hex for _ in range(50_000)]
    keys.add_many(added[:25_000])
    for key in added[25_000:]:
        keys.add(key)
    assert all(key in keys for key in added)
    assert not keys.full
    fresh = [uuid.uuid4().hex for _ in range(50_000)]
    false_positives = sum(key in keys for key in fresh)
    assert false_positives < 0.03 * len(fresh), false_positives
    keys.add("one more")
    assert keys.full
