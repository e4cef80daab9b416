"""Updates the sandbox keeps per user: the pts sequence, and what getDifference returns.

Only what the Passport bot needs: new messages, numbered by the user's pts (each one
``pts_count=1``), pushed live to the user's connections and kept for ``updates.getDifference``
(Telethon asks for it after signing in and whenever it sees a gap).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from telethon.tl import types

#: Messages kept per user for getDifference.
KEEP = 1000


@dataclass
class _UserUpdates:
    pts: int = 1
    messages: list[tuple[int, object, list[types.User]]] = field(default_factory=list)


class UpdateBook:
    def __init__(self) -> None:
        self._users: dict[int, _UserUpdates] = {}

    def _of(self, user_id: int) -> _UserUpdates:
        return self._users.setdefault(user_id, _UserUpdates())

    def state(self, user_id: int) -> types.updates.State:
        return types.updates.State(
            pts=self._of(user_id).pts, qts=0, date=int(time.time()), seq=1, unread_count=0
        )

    def next_message_id(self, user_id: int) -> int:
        return self._of(user_id).pts + 1

    def add_message(
        self, user_id: int, message: object, users: list[types.User]
    ) -> types.UpdateNewMessage:
        """Number a new message with the user's next pts and keep it."""
        book = self._of(user_id)
        book.pts += 1
        book.messages.append((book.pts, message, users))
        del book.messages[:-KEEP]
        return types.UpdateNewMessage(message=message, pts=book.pts, pts_count=1)

    def difference(
        self, user_id: int, pts: int
    ) -> types.updates.Difference | types.updates.DifferenceEmpty:
        book = self._of(user_id)
        newer = [(p, m, u) for p, m, u in book.messages if p > pts]
        if not newer:
            return types.updates.DifferenceEmpty(date=int(time.time()), seq=1)
        users = {user.id: user for _, _, listed in newer for user in listed}
        return types.updates.Difference(
            new_messages=[message for _, message, _ in newer],
            new_encrypted_messages=[],
            other_updates=[],
            chats=[],
            users=list(users.values()),
            state=self.state(user_id),
        )
