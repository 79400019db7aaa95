"""KeyFilter: which idempotency keys may already be in the log."""

from __future__ import annotations

import threading

#: Bits per key, with three hash functions: about 1 % false positives at capacity.
#: (Three, written out, not seven in a loop: the filter is loaded with every known key at start.)
BITS_PER_KEY = 12
_MASK = 0xFFFF_FFFF_FFFF_FFFF


class KeyFilter:
    """A Bloom filter of keys: ``key in f`` is False only for a key never added.

    Every request key is new but a retry's, so the log asks the database
    only about the keys this says may be known (a look-up is a sizeable part
    of a group commit).  Python's string hash is salted per process: the
    filter lives in memory and is built again at each start.

    >>> f = KeyFilter(1000)
    >>> f.add("upload-7")
    >>> "upload-7" in f
    True
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.count = 0
        self._size = max(64, capacity * BITS_PER_KEY)
        self._bits = bytearray((self._size + 7) // 8)
        self._lock = threading.Lock()  # its start-up load and the log's appends both add

    def _positions(self, key: str) -> tuple[int, int, int]:
        h = hash(key) & _MASK
        first, step, size = h & 0xFFFF_FFFF, (h >> 32) | 1, self._size
        return first % size, (first + step) % size, (first + 2 * step) % size

    def add(self, key: str) -> None:
        self.add_many([key])

    def add_many(self, keys: list[str]) -> None:
        bits, size = self._bits, self._size
        with self._lock:
            # _positions written out: a function call per key would slow down loading every key at start.
            for key in keys:
                h = hash(key) & _MASK
                first, step = h & 0xFFFF_FFFF, (h >> 32) | 1
                p = first % size
                bits[p >> 3] |= 1 << (p & 7)
                p = (first + step) % size
                bits[p >> 3] |= 1 << (p & 7)
                p = (first + 2 * step) % size
                bits[p >> 3] |= 1 << (p & 7)
            self.count += len(keys)

    def __contains__(self, key: str) -> bool:
        bits = self._bits
        a, b, c = self._positions(key)
        return bool(bits[a >> 3] >> (a & 7) & bits[b >> 3] >> (b & 7) & bits[c >> 3] >> (c & 7) & 1)

    @property
    def full(self) -> bool:
        """Past its capacity: false positives grow, and it is no longer worth asking."""
        return self.count > self.capacity
