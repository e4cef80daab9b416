"""Signals a host project can listen to. Every one is sent with ``sender=PhoneVerification``
and ``verification=<PhoneVerification>``; receivers may be sync or async. A failing receiver is
logged and never breaks the visitor's flow.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A visitor asked for a code (status ``sending``).
verification_started = Signal()
#: Telegram sent a code (also after a resend; ``resent=True`` then).
verification_code_sent = Signal()
#: The visitor proved control of the number.
verification_verified = Signal()
#: The verification failed; ``error`` is the protocol error code.
verification_failed = Signal()
#: The visitor (or staff) cancelled the verification.
verification_cancelled = Signal()
#: The verification ran out of time.
verification_expired = Signal()
