"""Channels' in-memory layer, made to scale with the number of open sockets.

The stock ``channels.layers.InMemoryChannelLayer`` walks every channel and every group, looking
for expired messages, on each ``receive`` and ``group_send``: with N sockets open, every frame
costs O(N), and a burst of N visitors O(N²). This one does that walk at most once per
``clean_interval`` seconds; expiry (``expiry``, 60 s by default) stays as coarse as before.
"""

from __future__ import annotations

import time
from typing import Any

from channels.layers import InMemoryChannelLayer as StockInMemoryChannelLayer


class InMemoryChannelLayer(StockInMemoryChannelLayer):
    clean_interval = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_clean = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._last_clean < self.clean_interval:
            return
        self._last_clean = now
        super()._clean_expired()
