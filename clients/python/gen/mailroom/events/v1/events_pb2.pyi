from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mailroom.mail.v1 import mail_pb2 as _mail_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MailBatched(_message.Message):
    __slots__ = ["batch", "event_time", "messages", "state", "user"]
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    BATCH_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    STATE_ENTERED: MailBatched.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_LEFT: MailBatched.State
    STATE_UNSPECIFIED: MailBatched.State
    USER_FIELD_NUMBER: _ClassVar[int]
    batch: str
    event_time: _timestamp_pb2.Timestamp
    messages: _containers.RepeatedScalarFieldContainer[str]
    state: MailBatched.State
    user: str
    def __init__(self, user: _Optional[str] = ..., messages: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[MailBatched.State, str]] = ..., batch: _Optional[str] = ..., event_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MailClassified(_message.Message):
    __slots__ = ["classification", "content", "ingest_time", "mailbox", "message", "provider_message_id", "sync_job", "usage", "user"]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    INGEST_TIME_FIELD_NUMBER: _ClassVar[int]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SYNC_JOB_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    classification: _mail_pb2.Classification
    content: _mail_pb2.NormalizedMessage
    ingest_time: _timestamp_pb2.Timestamp
    mailbox: str
    message: str
    provider_message_id: str
    sync_job: str
    usage: Usage
    user: str
    def __init__(self, user: _Optional[str] = ..., mailbox: _Optional[str] = ..., message: _Optional[str] = ..., provider_message_id: _Optional[str] = ..., content: _Optional[_Union[_mail_pb2.NormalizedMessage, _Mapping]] = ..., classification: _Optional[_Union[_mail_pb2.Classification, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., ingest_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., sync_job: _Optional[str] = ...) -> None: ...

class MailDeadLettered(_message.Message):
    __slots__ = ["attempts", "dead_time", "reason", "received", "usage"]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DEAD_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    dead_time: _timestamp_pb2.Timestamp
    reason: str
    received: MailReceived
    usage: Usage
    def __init__(self, received: _Optional[_Union[MailReceived, _Mapping]] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ..., dead_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class MailReceived(_message.Message):
    __slots__ = ["content", "ingest_time", "lane", "mailbox", "message", "provider_message_id", "sync_job", "user"]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    INGEST_TIME_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SYNC_JOB_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    content: _mail_pb2.NormalizedMessage
    ingest_time: _timestamp_pb2.Timestamp
    lane: _mail_pb2.Lane
    mailbox: str
    message: str
    provider_message_id: str
    sync_job: str
    user: str
    def __init__(self, user: _Optional[str] = ..., mailbox: _Optional[str] = ..., message: _Optional[str] = ..., provider_message_id: _Optional[str] = ..., lane: _Optional[_Union[_mail_pb2.Lane, str]] = ..., content: _Optional[_Union[_mail_pb2.NormalizedMessage, _Mapping]] = ..., ingest_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., sync_job: _Optional[str] = ...) -> None: ...

class ModelUsage(_message.Message):
    __slots__ = ["batch", "cached_prompt_tokens", "completion_tokens", "cost_micros", "model", "prompt_tokens", "requests"]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_MICROS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    batch: bool
    cached_prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    model: str
    prompt_tokens: int
    requests: int
    def __init__(self, model: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., cost_micros: _Optional[int] = ..., requests: _Optional[int] = ..., batch: bool = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ["cached_prompt_tokens", "completion_tokens", "cost_micros", "models", "prompt_tokens", "requests"]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_MICROS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    cached_prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    models: _containers.RepeatedCompositeFieldContainer[ModelUsage]
    prompt_tokens: int
    requests: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., cost_micros: _Optional[int] = ..., requests: _Optional[int] = ..., models: _Optional[_Iterable[_Union[ModelUsage, _Mapping]]] = ...) -> None: ...
