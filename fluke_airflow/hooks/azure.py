"""Azure Queue Storage hook and the ``azure_storage_queue`` connection type."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fluke_airflow import _airflow
from fluke_airflow._airflow import BaseHook
from fluke_airflow.auth.azure import AzureAuth
from fluke_airflow.auth.retrying import Deadline
from fluke_airflow.hooks.azure_connection import azure_auth_from_connection, extra_value, secrets_of
from fluke_airflow.hooks.base import ManagesQueues, SharedAuths, connection_fingerprint, refuse_settings, with_deadline
from fluke_airflow.queues.azure import AsyncAzureStorageQueue, AzureQueueLifecycle, AzureStorageQueue
from fluke_airflow.queues.management import QueueCreated

if TYPE_CHECKING:
    from airflow.sdk import Connection


class AzureStorageQueueHook(ManagesQueues, BaseHook):
    """Queues of an ``azure_storage_queue`` connection (``wasb`` connections are accepted too).

    Auth methods: connection string, SAS token, service principal, shared key, managed
    identity and ``DefaultAzureCredential``; a custom queue endpoint serves emulators.
    """

    conn_name_attr = "azure_storage_queue_conn_id"
    default_conn_name = "azure_storage_queue_default"
    conn_type = "azure_storage_queue"
    hook_name = "Azure Queue Storage"
    service = "Azure Queue Storage"

    def __init__(
        self, azure_storage_queue_conn_id: str = default_conn_name, *, connection: Connection | None = None
    ) -> None:
        super().__init__()
        self.conn_id = azure_storage_queue_conn_id
        self._connection = connection

    # -- UI (Airflow < 3.2 reads these; newer releases read conn-fields from provider info) ------
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        from fluke_airflow.get_provider_info import connection_type_info

        behaviour = connection_type_info(cls.conn_type)["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField

        from fluke_airflow.get_provider_info import connection_type_info

        widgets: dict[str, Any] = {}
        for name, field in connection_type_info(cls.conn_type)["conn-fields"].items():
            # The same label, description and default as conn-fields give Airflow 3.2+.
            options = {"description": field.get("description", ""), "default": field["schema"].get("default")}
            if field["schema"].get("format") == "password":
                widget = PasswordField(lazy_gettext(field["label"]), widget=BS3PasswordFieldWidget(), **options)
            else:
                widget = StringField(lazy_gettext(field["label"]), widget=BS3TextFieldWidget(), **options)
            widgets[name] = widget
        return widgets

    # -- connection -> fluke objects ----------------------------------------------------------------
    def _secrets(self, conn: Connection) -> list[str]:
        return secrets_of(conn.password, conn.extra_dejson, conn.conn_type or self.conn_type)

    def _build_auth(self, conn: Connection) -> AzureAuth:
        """The auth for ``conn``: pure, no I/O (so it may run anywhere, a worker thread included)."""
        conn_type = conn.conn_type or self.conn_type
        return azure_auth_from_connection(
            self.conn_id, conn_type, conn.host, conn.login, conn.password, conn.extra_dejson
        )

    def _auth_from(self, conn: Connection) -> AzureAuth:
        for secret in self._secrets(conn):
            _mask(secret)
        return self._build_auth(conn)

    def _queue_options(self, conn: Connection, kwargs: dict[str, Any]) -> dict[str, Any]:
        encoding = extra_value(conn.extra_dejson, conn.conn_type or self.conn_type, "message_encoding")
        if encoding and "message_encoding" not in kwargs:
            kwargs["message_encoding"] = encoding
        kwargs.setdefault("metric_tags", {"conn_id": self.conn_id})
        return kwargs

    def _get_conn(self) -> Connection:
        if self._connection is None:
            self._connection = self.get_connection(self.conn_id)
        return self._connection

    def get_conn(self) -> AzureAuth:
        return self.get_auth()

    def get_auth(self) -> AzureAuth:
        return self._auth_from(self._get_conn())

    def get_queue(self, queue: str, *, deadline: Deadline | None = None, **kwargs: Any) -> AzureStorageQueue:
        """An open queue; ``deadline``: what the task has left, which bounds the SDK's retries."""
        conn = self._get_conn()
        auth = with_deadline(self._auth_from(conn), deadline)
        return AzureStorageQueue(auth, queue, **self._queue_options(conn, kwargs))

    async def aget_queue(self, queue: str, *, share_client: bool = False, **kwargs: Any) -> AsyncAzureStorageQueue:
        """An async queue; with ``share_client=True`` (triggers) its queue client comes from the
        service client that every queue of this connection shares on the running event loop."""
        if self._connection is None:
            self._connection = await _airflow.aget_connection(self.conn_id)
        conn = self._connection
        # On the event loop only the async API talks to the supervisor: a blocking call from
        # here would suspend this trigger in the middle of a synchronous function.
        for secret in self._secrets(conn):
            await _amask(secret)
        if share_client:
            key = (self.conn_id, connection_fingerprint(conn))
            auth = await SHARED_AUTHS.aget(key, lambda: self._build_auth(conn))
        else:
            auth = self._build_auth(conn)
        options = self._queue_options(conn, kwargs)
        return AsyncAzureStorageQueue(auth, queue, share_client=share_client, **options)

    # -- queue lifecycle -------------------------------------------------------------------------------
    def _management(self, queue: str) -> AzureQueueLifecycle:
        return AzureQueueLifecycle(self.get_auth(), queue)

    def create_queue(
        self,
        queue: str,
        *,
        attributes: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> QueueCreated:
        """Create the queue ``queue`` with ``metadata``, or find it with that metadata (``None``: any);
        ``.queue`` of the result is its name. See :meth:`~fluke_airflow.queues.azure.AzureQueueLifecycle.create`."""
        refuse_settings(self.service, {"attributes": attributes, "tags": tags}, "metadata")
        with self.managing(queue) as management:
            created: QueueCreated = management.create(metadata)
            return created

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: list one queue of the account with these credentials."""
        auth: AzureAuth | None = None
        try:
            auth = self.get_auth()
            # One attempt: the SDK's retries would keep the Test button waiting for over a minute.
            client, credential = auth.create_service_client(retry_total=0)
            try:
                next(iter(client.list_queues(results_per_page=1).by_page()), None)
            finally:
                client.close()
                if credential is not None:
                    credential.close()
        except Exception as error:
            return False, _safe_error(error, auth)
        return True, f"Connected to the queue service at {auth.account_url}"


def _mask(secret: str) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    mask_secret(secret)


async def _amask(secret: str) -> None:
    """:func:`_mask` for the event loop (the triggerer): tells the supervisor without blocking it."""
    await _airflow.amask_secret(secret)


def _safe_error(error: Exception, auth: AzureAuth | None) -> str:
    """The cause and what to check, without request details (the SDK's messages can be long and
    echo URLs with a SAS token); a connection that could not be read says why."""
    if auth is None:
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    from fluke_airflow.queues.advice import azure_advice
    from fluke_airflow.queues.causes import cause_of, strip_query

    cause = cause_of(error, strip_query(auth.account_url) if auth.account_url else None)
    return f"{cause.text}. {azure_advice(cause, auth.source, auth, 'listing queues')}"


SHARED_AUTHS: SharedAuths[AzureAuth] = SharedAuths()
