from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

CLASSIFICATION_SOURCE_CACHE: ClassificationSource
CLASSIFICATION_SOURCE_LEARNED: ClassificationSource
CLASSIFICATION_SOURCE_LLM: ClassificationSource
CLASSIFICATION_SOURCE_RULES: ClassificationSource
CLASSIFICATION_SOURCE_UNSPECIFIED: ClassificationSource
CLASSIFICATION_SOURCE_USER: ClassificationSource
DESCRIPTOR: _descriptor.FileDescriptor
LANE_BACKFILL: Lane
LANE_INTERACTIVE: Lane
LANE_LIVE: Lane
LANE_UNSPECIFIED: Lane
PRIORITY_HIGH: Priority
PRIORITY_LOW: Priority
PRIORITY_NORMAL: Priority
PRIORITY_UNSPECIFIED: Priority

class Attachment(_message.Message):
    __slots__ = ["content_type", "filename", "size_bytes"]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    filename: str
    size_bytes: int
    def __init__(self, filename: _Optional[str] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class Classification(_message.Message):
    __slots__ = ["category", "classify_time", "confidence", "model", "needs_reply", "priority", "reason", "rule", "source"]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CLASSIFY_TIME_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NEEDS_REPLY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    category: str
    classify_time: _timestamp_pb2.Timestamp
    confidence: float
    model: str
    needs_reply: bool
    priority: Priority
    reason: str
    rule: str
    source: ClassificationSource
    def __init__(self, category: _Optional[str] = ..., confidence: _Optional[float] = ..., priority: _Optional[_Union[Priority, str]] = ..., needs_reply: bool = ..., reason: _Optional[str] = ..., source: _Optional[_Union[ClassificationSource, str]] = ..., rule: _Optional[str] = ..., model: _Optional[str] = ..., classify_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ["name", "value"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class NormalizedMessage(_message.Message):
    __slots__ = ["attachments", "cc", "content_hash", "from_address", "has_calendar", "headers", "message_id_header", "received_time", "size_bytes", "snippet", "subject", "text_body", "to"]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    CC_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    FROM_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    HAS_CALENDAR_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_HEADER_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_TIME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    TEXT_BODY_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    attachments: _containers.RepeatedCompositeFieldContainer[Attachment]
    cc: _containers.RepeatedScalarFieldContainer[str]
    content_hash: str
    from_address: str
    has_calendar: bool
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    message_id_header: str
    received_time: _timestamp_pb2.Timestamp
    size_bytes: int
    snippet: str
    subject: str
    text_body: str
    to: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, message_id_header: _Optional[str] = ..., subject: _Optional[str] = ..., from_address: _Optional[str] = ..., to: _Optional[_Iterable[str]] = ..., cc: _Optional[_Iterable[str]] = ..., received_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., text_body: _Optional[str] = ..., snippet: _Optional[str] = ..., attachments: _Optional[_Iterable[_Union[Attachment, _Mapping]]] = ..., size_bytes: _Optional[int] = ..., has_calendar: bool = ..., content_hash: _Optional[str] = ..., **kwargs) -> None: ...

class Lane(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class ClassificationSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
