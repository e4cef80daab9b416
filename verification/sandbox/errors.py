"""The exception the sandbox raises to answer a call with an ``rpc_error``."""

from __future__ import annotations


class RpcFailure(Exception):
    """Answer the current call with ``rpc_error(code, message)``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


def unauthorized() -> RpcFailure:
    return RpcFailure(401, "AUTH_KEY_UNREGISTERED")
