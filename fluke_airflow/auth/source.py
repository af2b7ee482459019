"""Where an auth's settings came from, so that an error can say what to change.

A hook that reads an Airflow connection records the connection id and, in words, the fields the
credential and the address came from ("the connection's Password field (the account key)");
an auth made in code gets phrases naming its constructor's arguments. Never holds a secret.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    conn_id: str | None = None
    """The Airflow connection, when a hook made the auth."""
    credential: str = ""
    """Where the credential is set, e.g. ``"the account key in the connection's Password field"``."""
    endpoint: str = ""
    """Where the address is set, e.g. ``"the connection's queue_endpoint extra"``."""

    def where(self) -> str:
        """`` (connection 'x')`` for messages, or ``""``."""
        return f" (connection {self.conn_id!r})" if self.conn_id else ""


IN_CODE = Source()
"""An auth made in code: the errors name the constructor's arguments instead."""
