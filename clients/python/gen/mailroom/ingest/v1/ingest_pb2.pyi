from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mailroom.mail.v1 import mail_pb2 as _mail_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
IMAP_SECURITY_NONE: ImapSecurity
IMAP_SECURITY_STARTTLS: ImapSecurity
IMAP_SECURITY_TLS: ImapSecurity
IMAP_SECURITY_UNSPECIFIED: ImapSecurity
MAILBOX_STATE_ACTIVE: MailboxState
MAILBOX_STATE_DISCONNECTED: MailboxState
MAILBOX_STATE_PENDING_AUTHORIZATION: MailboxState
MAILBOX_STATE_UNSPECIFIED: MailboxState
PROVIDER_GMAIL: Provider
PROVIDER_IMAP: Provider
PROVIDER_IMPORT: Provider
PROVIDER_UNSPECIFIED: Provider
SYNC_JOB_STATE_FAILED: SyncJobState
SYNC_JOB_STATE_PENDING: SyncJobState
SYNC_JOB_STATE_RUNNING: SyncJobState
SYNC_JOB_STATE_SUCCEEDED: SyncJobState
SYNC_JOB_STATE_UNSPECIFIED: SyncJobState
SYNC_MODE_FULL: SyncMode
SYNC_MODE_INCREMENTAL: SyncMode
SYNC_MODE_UNSPECIFIED: SyncMode

class CompleteAuthorizationRequest(_message.Message):
    __slots__ = ["binding", "code", "error", "state"]
    BINDING_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    binding: str
    code: str
    error: str
    state: str
    def __init__(self, state: _Optional[str] = ..., code: _Optional[str] = ..., error: _Optional[str] = ..., binding: _Optional[str] = ...) -> None: ...

class CompleteAuthorizationResponse(_message.Message):
    __slots__ = ["mailbox"]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    mailbox: Mailbox
    def __init__(self, mailbox: _Optional[_Union[Mailbox, _Mapping]] = ...) -> None: ...

class CreateMailboxRequest(_message.Message):
    __slots__ = ["mailbox", "mailbox_id", "parent"]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    MAILBOX_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    mailbox: Mailbox
    mailbox_id: str
    parent: str
    def __init__(self, parent: _Optional[str] = ..., mailbox: _Optional[_Union[Mailbox, _Mapping]] = ..., mailbox_id: _Optional[str] = ...) -> None: ...

class CreateMailboxResponse(_message.Message):
    __slots__ = ["mailbox"]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    mailbox: Mailbox
    def __init__(self, mailbox: _Optional[_Union[Mailbox, _Mapping]] = ...) -> None: ...

class DeleteMailboxRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteMailboxResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetMailboxRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetMailboxResponse(_message.Message):
    __slots__ = ["mailbox"]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    mailbox: Mailbox
    def __init__(self, mailbox: _Optional[_Union[Mailbox, _Mapping]] = ...) -> None: ...

class GetSyncJobRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetSyncJobResponse(_message.Message):
    __slots__ = ["sync_job"]
    SYNC_JOB_FIELD_NUMBER: _ClassVar[int]
    sync_job: SyncJob
    def __init__(self, sync_job: _Optional[_Union[SyncJob, _Mapping]] = ...) -> None: ...

class ImapSettings(_message.Message):
    __slots__ = ["folders", "host", "password", "port", "security", "username"]
    FOLDERS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    folders: _containers.RepeatedScalarFieldContainer[str]
    host: str
    password: str
    port: int
    security: ImapSecurity
    username: str
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ..., username: _Optional[str] = ..., password: _Optional[str] = ..., security: _Optional[_Union[ImapSecurity, str]] = ..., folders: _Optional[_Iterable[str]] = ...) -> None: ...

class ImportMessagesRequest(_message.Message):
    __slots__ = ["lane", "messages", "parent"]
    LANE_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    lane: _mail_pb2.Lane
    messages: _containers.RepeatedCompositeFieldContainer[RawMessage]
    parent: str
    def __init__(self, parent: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[RawMessage, _Mapping]]] = ..., lane: _Optional[_Union[_mail_pb2.Lane, str]] = ...) -> None: ...

class ImportMessagesResponse(_message.Message):
    __slots__ = ["messages"]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ImportedMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[ImportedMessage, _Mapping]]] = ...) -> None: ...

class ImportedMessage(_message.Message):
    __slots__ = ["message", "provider_message_id", "subject"]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    message: str
    provider_message_id: str
    subject: str
    def __init__(self, message: _Optional[str] = ..., provider_message_id: _Optional[str] = ..., subject: _Optional[str] = ...) -> None: ...

class ListMailboxesRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "parent"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    parent: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMailboxesResponse(_message.Message):
    __slots__ = ["mailboxes", "next_page_token"]
    MAILBOXES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    mailboxes: _containers.RepeatedCompositeFieldContainer[Mailbox]
    next_page_token: str
    def __init__(self, mailboxes: _Optional[_Iterable[_Union[Mailbox, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListSyncJobsRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "parent"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    parent: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSyncJobsResponse(_message.Message):
    __slots__ = ["next_page_token", "sync_jobs"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SYNC_JOBS_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    sync_jobs: _containers.RepeatedCompositeFieldContainer[SyncJob]
    def __init__(self, sync_jobs: _Optional[_Iterable[_Union[SyncJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Mailbox(_message.Message):
    __slots__ = ["address", "authorization_url", "create_time", "display_name", "imap", "last_sync_time", "message_count", "name", "provider", "state", "state_reason"]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_URL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAP_FIELD_NUMBER: _ClassVar[int]
    LAST_SYNC_TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    address: str
    authorization_url: str
    create_time: _timestamp_pb2.Timestamp
    display_name: str
    imap: ImapSettings
    last_sync_time: _timestamp_pb2.Timestamp
    message_count: int
    name: str
    provider: Provider
    state: MailboxState
    state_reason: str
    def __init__(self, name: _Optional[str] = ..., provider: _Optional[_Union[Provider, str]] = ..., address: _Optional[str] = ..., display_name: _Optional[str] = ..., state: _Optional[_Union[MailboxState, str]] = ..., state_reason: _Optional[str] = ..., authorization_url: _Optional[str] = ..., imap: _Optional[_Union[ImapSettings, _Mapping]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., last_sync_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., message_count: _Optional[int] = ...) -> None: ...

class NotifyGmailPushRequest(_message.Message):
    __slots__ = ["email_address", "history_id"]
    EMAIL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ID_FIELD_NUMBER: _ClassVar[int]
    email_address: str
    history_id: int
    def __init__(self, email_address: _Optional[str] = ..., history_id: _Optional[int] = ...) -> None: ...

class NotifyGmailPushResponse(_message.Message):
    __slots__ = ["mailboxes"]
    MAILBOXES_FIELD_NUMBER: _ClassVar[int]
    mailboxes: int
    def __init__(self, mailboxes: _Optional[int] = ...) -> None: ...

class PurgeUserDataRequest(_message.Message):
    __slots__ = ["user"]
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class PurgeUserDataResponse(_message.Message):
    __slots__ = ["deleted"]
    class DeletedEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: _containers.ScalarMap[str, int]
    def __init__(self, deleted: _Optional[_Mapping[str, int]] = ...) -> None: ...

class RawMessage(_message.Message):
    __slots__ = ["raw"]
    RAW_FIELD_NUMBER: _ClassVar[int]
    raw: bytes
    def __init__(self, raw: _Optional[bytes] = ...) -> None: ...

class ReconnectMailboxRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ReconnectMailboxResponse(_message.Message):
    __slots__ = ["mailbox"]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    mailbox: Mailbox
    def __init__(self, mailbox: _Optional[_Union[Mailbox, _Mapping]] = ...) -> None: ...

class StartAuthorizationRequest(_message.Message):
    __slots__ = ["binding", "state"]
    BINDING_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    binding: str
    state: str
    def __init__(self, state: _Optional[str] = ..., binding: _Optional[str] = ...) -> None: ...

class StartAuthorizationResponse(_message.Message):
    __slots__ = ["google_authorization_url"]
    GOOGLE_AUTHORIZATION_URL_FIELD_NUMBER: _ClassVar[int]
    google_authorization_url: str
    def __init__(self, google_authorization_url: _Optional[str] = ...) -> None: ...

class SyncJob(_message.Message):
    __slots__ = ["create_time", "end_time", "error", "mailbox", "max_messages", "mode", "name", "progress", "state"]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    error: str
    mailbox: str
    max_messages: int
    mode: SyncMode
    name: str
    progress: SyncProgress
    state: SyncJobState
    def __init__(self, name: _Optional[str] = ..., mailbox: _Optional[str] = ..., mode: _Optional[_Union[SyncMode, str]] = ..., max_messages: _Optional[int] = ..., state: _Optional[_Union[SyncJobState, str]] = ..., progress: _Optional[_Union[SyncProgress, _Mapping]] = ..., error: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SyncMailboxRequest(_message.Message):
    __slots__ = ["max_messages", "mode", "name"]
    MAX_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    max_messages: int
    mode: SyncMode
    name: str
    def __init__(self, name: _Optional[str] = ..., mode: _Optional[_Union[SyncMode, str]] = ..., max_messages: _Optional[int] = ...) -> None: ...

class SyncMailboxResponse(_message.Message):
    __slots__ = ["sync_job"]
    SYNC_JOB_FIELD_NUMBER: _ClassVar[int]
    sync_job: SyncJob
    def __init__(self, sync_job: _Optional[_Union[SyncJob, _Mapping]] = ...) -> None: ...

class SyncProgress(_message.Message):
    __slots__ = ["batched", "classified", "failed", "fetched", "listed", "published", "skipped"]
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FETCHED_FIELD_NUMBER: _ClassVar[int]
    LISTED_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    batched: int
    classified: int
    failed: int
    fetched: int
    listed: int
    published: int
    skipped: int
    def __init__(self, listed: _Optional[int] = ..., fetched: _Optional[int] = ..., published: _Optional[int] = ..., skipped: _Optional[int] = ..., failed: _Optional[int] = ..., classified: _Optional[int] = ..., batched: _Optional[int] = ...) -> None: ...

class WatchSyncJobRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchSyncJobResponse(_message.Message):
    __slots__ = ["sync_job"]
    SYNC_JOB_FIELD_NUMBER: _ClassVar[int]
    sync_job: SyncJob
    def __init__(self, sync_job: _Optional[_Union[SyncJob, _Mapping]] = ...) -> None: ...

class Provider(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class MailboxState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class ImapSecurity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class SyncMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class SyncJobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
