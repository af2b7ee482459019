"""What to change when a request fails: the connection field, the permission or the service
setting behind each :class:`~fluke_airflow.queues.causes.Cause`, in words a person can act on.

The fields are named as the auth's :class:`~fluke_airflow.auth.source.Source` recorded them (a
hook names the connection's fields; an auth made in code, its constructor's arguments).
"""

from __future__ import annotations

from typing import Any

from fluke_airflow.auth.source import Source
from fluke_airflow.queues.causes import Cause

SQS_PERMISSIONS = {
    "GetQueueUrl": "sqs:GetQueueUrl",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "SendMessageBatch": "sqs:SendMessage",
    "SendMessage": "sqs:SendMessage",
    "PurgeQueue": "sqs:PurgeQueue",
}
"""The IAM action each request needs (a batch request needs the action of its single form)."""
_SQS_BY_ACTION = {
    "opening": "sqs:GetQueueUrl and sqs:GetQueueAttributes",
    "receive": "sqs:ReceiveMessage",
    "delete": "sqs:DeleteMessage",
    "visibility change": "sqs:ChangeMessageVisibility",
    "send": "sqs:SendMessage",
    "count": "sqs:GetQueueAttributes",
    "purge": "sqs:PurgeQueue",
}
_AZURE_SAS_BY_ACTION = {
    "opening": "r (read: the queue's properties)",
    "receive": "p (process: get and delete messages)",
    "delete": "p (process)",
    "visibility change": "u (update) with p (process)",
    "send": "a (add)",
    "peek": "r (read)",
    "count": "r (read)",
    "clear": "p (process)",
}
_AZURE_ROLES = (
    "give the identity an Azure role on the queue or its storage account that allows it: Storage Queue "
    "Data Contributor allows all this provider does; Storage Queue Data Message Processor (peek, receive, "
    "delete) and Storage Queue Data Message Sender (push) are narrower"
)


def _network(cause: Cause, endpoint: str, service_name: str) -> str:
    at = f"{cause.host}:{cause.port}" if cause.host else "the address"
    if cause.kind == "dns":
        return (
            f"Check {endpoint}: the host name {cause.host!r} does not resolve from this machine (a typo in the "
            "account name or region, or a private endpoint this machine's DNS does not know)"
        )
    if cause.kind == "tls":
        return (
            f"Check {endpoint} (https to a server that speaks TLS, under the name its certificate has) and the "
            "certificate authorities this machine trusts"
        )
    if cause.kind == "refused":
        return f"Check {endpoint}: is {service_name} running at {at}, and is that the right host and port?"
    if cause.kind in ("connect-timeout", "unreachable"):
        return (
            f"Check {endpoint}: {at} did not accept a connection; is it the right address, and may this machine "
            "reach it (firewall, security group, proxy, private network)?"
        )
    return (
        f"Check {endpoint} and the network between this machine and {at} (a proxy or load balancer that cuts "
        f"connections); if it lasts, is {service_name} healthy?"
    )


def _refused(cause: Cause, action: str) -> str:
    """Advice for an answer no rule above knows: the service's own message is the best guide."""
    if cause.status == 413 or "TooLarge" in (cause.code or ""):
        return f"The {action} was larger than the service accepts: send smaller messages"
    if cause.kind == "http":
        return f"The service refused the {action}: its message above says what it objects to"
    return f"The {action} failed before an answer came; if it lasts, report it with this message"


# -- Amazon SQS ------------------------------------------------------------------------------------------
def _sqs_endpoint(source: Source, auth: Any) -> str:
    if source.endpoint:
        return source.endpoint
    if getattr(auth, "endpoint_url", None):
        return "the endpoint_url"
    region = getattr(auth, "_region", None) or "from the default chain"
    return f"the region ({region}): the endpoint is sqs.<region>.amazonaws.com"


def _sqs_credential(source: Source, auth: Any) -> str:
    if source.credential:
        return source.credential
    if getattr(auth, "_key_id", None):
        return "the aws_access_key_id and aws_secret_access_key"
    if getattr(auth, "profile_name", None):
        return f"the profile {auth.profile_name!r} in this machine's AWS config files"
    return "the credentials botocore finds on this machine (environment, ~/.aws, container or instance role)"


def sqs_advice(cause: Cause, source: Source, auth: Any, action: str) -> str:
    """What to check for a failed SQS request."""
    if cause.network:
        return _network(cause, _sqs_endpoint(source, auth), "the SQS endpoint")
    credential = _sqs_credential(source, auth)
    code = cause.code or ""
    if cause.kind == "credentials":
        return f"Check {credential}: botocore found no usable credentials"
    if code in ("SignatureDoesNotMatch", "InvalidSignatureException", "IncompleteSignature"):
        return (
            f"Check {credential}: the secret access key does not belong to the access key id (copied "
            "incompletely, or rotated), or this machine's clock is far off"
        )
    if code in ("InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId",
                "MissingAuthenticationToken"):  # fmt: skip
        return (
            f"Check {credential}: AWS does not know the access key id (deleted or inactive, a key of another "
            "partition such as China or GovCloud, or a session token missing for temporary keys)"
        )
    if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
        return f"Check {credential}: the temporary credentials expired (or this machine's clock is off)"
    if code.startswith("KMS.") or "kms" in code.lower():
        return (
            "The queue is encrypted with a KMS key: the identity needs kms:Decrypt (to receive) or "
            "kms:GenerateDataKey (to send) on that key, and the key's policy must allow it"
        )
    if code in ("AccessDenied", "AccessDeniedException", "NotAuthorized") or cause.status == 403:
        permission = SQS_PERMISSIONS.get(cause.operation or "") or _SQS_BY_ACTION.get(action, "the SQS action")
        return (
            f"Check the IAM permissions of the identity of {credential}: it needs {permission} on this "
            "queue (in an identity policy or the queue's access policy; an explicit Deny or an SCP overrides both)"
        )
    if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
        region = getattr(auth, "_region", None) or "the connection's region"
        return (
            f"Check the queue's name (case matters) and the region ({region}); a queue of another account needs "
            "its URL and that account's permission"
        )
    if code in ("RequestThrottled", "ThrottlingException", "Throttling") or cause.status in (429, 503):
        return "SQS throttled the requests: lower the number of concurrent consumers, or retry later"
    if cause.status is not None and cause.status >= 500:
        return "This is the service's own failure: retry later; if it lasts, check the AWS Health Dashboard"
    return _refused(cause, action)


# -- Azure Queue Storage -------------------------------------------------------------------------------
def _azure_endpoint(source: Source, auth: Any) -> str:
    if source.endpoint:
        return source.endpoint
    if getattr(auth, "method", "") == "connection_string":
        return "the connection string's QueueEndpoint (or AccountName and EndpointSuffix)"
    return "the account_url (or storage_account)"


def _azure_credential(source: Source, auth: Any) -> str:
    if source.credential:
        return source.credential
    return {
        "connection_string": "the AccountKey or SharedAccessSignature of the connection string",
        "account_key": "the account key (account_key)",
        "sas_token": "the SAS token (sas_token)",
        "service_principal": "tenant_id, client_id and client_secret",
        "managed_identity": "the managed identity (client_id)",
        "default": "the credential DefaultAzureCredential finds (environment, workload identity, managed "
        "identity, Azure CLI)",
    }.get(getattr(auth, "method", ""), "the credentials")


def _account(auth: Any) -> str:
    options = getattr(auth, "_options", {}) or {}
    name = options.get("account_name")
    if name:
        return str(name)
    try:
        from fluke_airflow.auth.azure import _account_from_url

        return _account_from_url(getattr(auth, "account_url", "") or "")
    except ValueError:
        return "the account"


def azure_advice(cause: Cause, source: Source, auth: Any, action: str) -> str:
    """What to check for a failed Azure Queue Storage request."""
    if cause.network:
        return _network(cause, _azure_endpoint(source, auth), "the queue service")
    credential = _azure_credential(source, auth)
    method = getattr(auth, "method", "")
    code = cause.code or ""
    if cause.kind == "credentials":
        return f"Check {credential}: no token could be had for the storage account"
    if code in ("AuthenticationFailed", "InvalidAuthenticationInfo", "NoAuthenticationInformation") or (
        cause.status == 403 and not code
    ):
        if getattr(auth, "uses_sas", False):
            return (
                f"Check {credential}: the SAS token must be signed with a current key of storage account "
                f"{_account(auth)!r}, be valid now (st= and se=, its expiry) and allow the queue service (ss=q "
                "for an account SAS, or be made for this queue)"
            )
        if method in ("service_principal", "managed_identity", "default"):
            return f"Check {credential}: the token was refused by storage account {_account(auth)!r}"
        return (
            f"Check {credential}: the account key must be key1 or key2 of storage account {_account(auth)!r} "
            "(Azure portal: the storage account's Access keys), copied whole"
        )
    if code.startswith("Authorization") or cause.status == 403:
        if code == "AuthorizationFailure" and not getattr(auth, "uses_sas", False):
            return (
                "Check the storage account's Networking settings: its firewall may not allow this machine "
                f"(or the identity of {credential} lacks a role for this)"
            )
        if getattr(auth, "uses_sas", False):
            needed = _AZURE_SAS_BY_ACTION.get(action, "the permission for this request")
            kind = (
                " and resource types c (queues) and o (messages) for an account SAS"
                if code.endswith("ResourceTypeMismatch")
                else ""
            )
            return f"Check the permissions (sp=) of {credential}: {action} needs {needed}{kind}"
        return f"Check the permissions of {credential}: {_AZURE_ROLES}"
    if code in ("QueueNotFound", "ResourceNotFound") or cause.status == 404:
        return (
            f"Check the queue's name (lowercase letters, digits, hyphens) and that it exists in storage account "
            f"{_account(auth)!r}, which {_azure_endpoint(source, auth)} points to"
        )
    if code in ("ServerBusy", "OperationTimedOut") or cause.status in (429, 503):
        return "The storage account throttled the requests (ServerBusy): lower the number of concurrent consumers"
    if cause.status is not None and cause.status >= 500:
        return "This is the service's own failure: retry later; if it lasts, check Azure Service Health"
    return _refused(cause, action)
