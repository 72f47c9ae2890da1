from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mailroom.mail.v1 import mail_pb2 as _mail_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BatchQueue(_message.Message):
    __slots__ = ["answered", "batches", "realtime", "waiting"]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    REALTIME_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    answered: int
    batches: int
    realtime: int
    waiting: int
    def __init__(self, waiting: _Optional[int] = ..., batches: _Optional[int] = ..., answered: _Optional[int] = ..., realtime: _Optional[int] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ["credit_remaining_micros", "daily_limit_micros", "exhausted", "spent_today_micros"]
    CREDIT_REMAINING_MICROS_FIELD_NUMBER: _ClassVar[int]
    DAILY_LIMIT_MICROS_FIELD_NUMBER: _ClassVar[int]
    EXHAUSTED_FIELD_NUMBER: _ClassVar[int]
    SPENT_TODAY_MICROS_FIELD_NUMBER: _ClassVar[int]
    credit_remaining_micros: int
    daily_limit_micros: int
    exhausted: bool
    spent_today_micros: int
    def __init__(self, daily_limit_micros: _Optional[int] = ..., spent_today_micros: _Optional[int] = ..., credit_remaining_micros: _Optional[int] = ..., exhausted: bool = ...) -> None: ...

class Category(_message.Message):
    __slots__ = ["description", "name"]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    description: str
    name: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ["body", "headers", "parent", "raw", "subject"]
    BODY_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    body: str
    headers: _containers.RepeatedCompositeFieldContainer[_mail_pb2.Header]
    parent: str
    raw: bytes
    subject: str
    def __init__(self, parent: _Optional[str] = ..., raw: _Optional[bytes] = ..., subject: _Optional[str] = ..., body: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[_mail_pb2.Header, _Mapping]]] = ..., **kwargs) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ["classification"]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    classification: _mail_pb2.Classification
    def __init__(self, classification: _Optional[_Union[_mail_pb2.Classification, _Mapping]] = ...) -> None: ...

class Correction(_message.Message):
    __slots__ = ["category", "list_id", "message", "sender_address", "subject"]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    LIST_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SENDER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    category: str
    list_id: str
    message: str
    sender_address: str
    subject: str
    def __init__(self, message: _Optional[str] = ..., sender_address: _Optional[str] = ..., subject: _Optional[str] = ..., category: _Optional[str] = ..., list_id: _Optional[str] = ..., **kwargs) -> None: ...

class CreateCorrectionRequest(_message.Message):
    __slots__ = ["correction", "parent"]
    CORRECTION_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    correction: Correction
    parent: str
    def __init__(self, parent: _Optional[str] = ..., correction: _Optional[_Union[Correction, _Mapping]] = ...) -> None: ...

class CreateCorrectionResponse(_message.Message):
    __slots__ = ["correction"]
    CORRECTION_FIELD_NUMBER: _ClassVar[int]
    correction: Correction
    def __init__(self, correction: _Optional[_Union[Correction, _Mapping]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ["attempts", "dead_time", "mailbox", "message", "name", "reason"]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DEAD_TIME_FIELD_NUMBER: _ClassVar[int]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    dead_time: _timestamp_pb2.Timestamp
    mailbox: str
    message: str
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., message: _Optional[str] = ..., mailbox: _Optional[str] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ..., dead_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetLimitsRequest(_message.Message):
    __slots__ = ["history_since"]
    HISTORY_SINCE_FIELD_NUMBER: _ClassVar[int]
    history_since: _timestamp_pb2.Timestamp
    def __init__(self, history_since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetLimitsResponse(_message.Message):
    __slots__ = ["backlog", "batches", "budget", "history", "keys", "lanes", "model", "replicas"]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    LANES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    backlog: int
    batches: BatchQueue
    budget: Budget
    history: _containers.RepeatedCompositeFieldContainer[LimitsSnapshot]
    keys: _containers.RepeatedCompositeFieldContainer[KeyLimits]
    lanes: _containers.RepeatedCompositeFieldContainer[LaneQueue]
    model: str
    replicas: int
    def __init__(self, keys: _Optional[_Iterable[_Union[KeyLimits, _Mapping]]] = ..., lanes: _Optional[_Iterable[_Union[LaneQueue, _Mapping]]] = ..., replicas: _Optional[int] = ..., model: _Optional[str] = ..., budget: _Optional[_Union[Budget, _Mapping]] = ..., batches: _Optional[_Union[BatchQueue, _Mapping]] = ..., history: _Optional[_Iterable[_Union[LimitsSnapshot, _Mapping]]] = ..., backlog: _Optional[int] = ...) -> None: ...

class GetQuotaRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetQuotaResponse(_message.Message):
    __slots__ = ["quota"]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    quota: Quota
    def __init__(self, quota: _Optional[_Union[Quota, _Mapping]] = ...) -> None: ...

class GetTaxonomyRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetTaxonomyResponse(_message.Message):
    __slots__ = ["taxonomy"]
    TAXONOMY_FIELD_NUMBER: _ClassVar[int]
    taxonomy: Taxonomy
    def __init__(self, taxonomy: _Optional[_Union[Taxonomy, _Mapping]] = ...) -> None: ...

class KeyLimits(_message.Message):
    __slots__ = ["advertised_requests_per_minute", "advertised_tokens_per_minute", "ceiling", "configured_requests_per_minute", "configured_tokens_per_minute", "frozen_seconds", "in_flight", "key", "limit_source", "model", "rate_limited_last_minute", "requests_available", "requests_per_minute", "retries_last_minute", "tokens_available", "tokens_per_minute"]
    ADVERTISED_REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    ADVERTISED_TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    CEILING_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    FROZEN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITED_LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    RETRIES_LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    advertised_requests_per_minute: float
    advertised_tokens_per_minute: float
    ceiling: float
    configured_requests_per_minute: float
    configured_tokens_per_minute: float
    frozen_seconds: float
    in_flight: int
    key: str
    limit_source: str
    model: str
    rate_limited_last_minute: int
    requests_available: float
    requests_per_minute: float
    retries_last_minute: int
    tokens_available: float
    tokens_per_minute: float
    def __init__(self, key: _Optional[str] = ..., model: _Optional[str] = ..., requests_per_minute: _Optional[float] = ..., tokens_per_minute: _Optional[float] = ..., configured_requests_per_minute: _Optional[float] = ..., configured_tokens_per_minute: _Optional[float] = ..., advertised_requests_per_minute: _Optional[float] = ..., advertised_tokens_per_minute: _Optional[float] = ..., limit_source: _Optional[str] = ..., ceiling: _Optional[float] = ..., requests_available: _Optional[float] = ..., tokens_available: _Optional[float] = ..., in_flight: _Optional[int] = ..., rate_limited_last_minute: _Optional[int] = ..., retries_last_minute: _Optional[int] = ..., frozen_seconds: _Optional[float] = ...) -> None: ...

class KeySample(_message.Message):
    __slots__ = ["frozen_seconds", "in_flight", "key", "model", "rate_limited", "requests", "requests_available", "requests_per_minute", "requests_used_per_minute", "tokens_available", "tokens_per_minute", "tokens_used_per_minute"]
    FROZEN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITED_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_USED_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_USED_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    frozen_seconds: float
    in_flight: int
    key: str
    model: str
    rate_limited: int
    requests: int
    requests_available: float
    requests_per_minute: float
    requests_used_per_minute: float
    tokens_available: float
    tokens_per_minute: float
    tokens_used_per_minute: float
    def __init__(self, key: _Optional[str] = ..., model: _Optional[str] = ..., requests_per_minute: _Optional[float] = ..., tokens_per_minute: _Optional[float] = ..., requests_used_per_minute: _Optional[float] = ..., tokens_used_per_minute: _Optional[float] = ..., requests_available: _Optional[float] = ..., tokens_available: _Optional[float] = ..., in_flight: _Optional[int] = ..., requests: _Optional[int] = ..., rate_limited: _Optional[int] = ..., frozen_seconds: _Optional[float] = ...) -> None: ...

class LaneQueue(_message.Message):
    __slots__ = ["lane", "oldest_wait_seconds", "waiting"]
    LANE_FIELD_NUMBER: _ClassVar[int]
    OLDEST_WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    lane: _mail_pb2.Lane
    oldest_wait_seconds: float
    waiting: int
    def __init__(self, lane: _Optional[_Union[_mail_pb2.Lane, str]] = ..., waiting: _Optional[int] = ..., oldest_wait_seconds: _Optional[float] = ...) -> None: ...

class LimitsSnapshot(_message.Message):
    __slots__ = ["backlog", "keys", "lanes", "time"]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    LANES_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    backlog: int
    keys: _containers.RepeatedCompositeFieldContainer[KeySample]
    lanes: _containers.RepeatedCompositeFieldContainer[LaneQueue]
    time: _timestamp_pb2.Timestamp
    def __init__(self, time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., keys: _Optional[_Iterable[_Union[KeySample, _Mapping]]] = ..., lanes: _Optional[_Iterable[_Union[LaneQueue, _Mapping]]] = ..., backlog: _Optional[int] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "parent"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    parent: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ["dead_letters", "next_page_token"]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

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

class Quota(_message.Message):
    __slots__ = ["effective_mails_per_day", "effective_model_tokens_per_day", "mails_per_day", "mails_used", "model_tokens_per_day", "model_tokens_used", "name", "reset_time"]
    EFFECTIVE_MAILS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_MODEL_TOKENS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    MAILS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    MAILS_USED_FIELD_NUMBER: _ClassVar[int]
    MODEL_TOKENS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    MODEL_TOKENS_USED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESET_TIME_FIELD_NUMBER: _ClassVar[int]
    effective_mails_per_day: int
    effective_model_tokens_per_day: int
    mails_per_day: int
    mails_used: int
    model_tokens_per_day: int
    model_tokens_used: int
    name: str
    reset_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., model_tokens_per_day: _Optional[int] = ..., mails_per_day: _Optional[int] = ..., effective_model_tokens_per_day: _Optional[int] = ..., effective_mails_per_day: _Optional[int] = ..., model_tokens_used: _Optional[int] = ..., mails_used: _Optional[int] = ..., reset_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReplayDeadLetterRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ReplayDeadLetterResponse(_message.Message):
    __slots__ = ["message"]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class Taxonomy(_message.Message):
    __slots__ = ["categories", "name", "update_time"]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedCompositeFieldContainer[Category]
    name: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., categories: _Optional[_Iterable[_Union[Category, _Mapping]]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpdateQuotaRequest(_message.Message):
    __slots__ = ["quota"]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    quota: Quota
    def __init__(self, quota: _Optional[_Union[Quota, _Mapping]] = ...) -> None: ...

class UpdateQuotaResponse(_message.Message):
    __slots__ = ["quota"]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    quota: Quota
    def __init__(self, quota: _Optional[_Union[Quota, _Mapping]] = ...) -> None: ...

class UpdateTaxonomyRequest(_message.Message):
    __slots__ = ["taxonomy"]
    TAXONOMY_FIELD_NUMBER: _ClassVar[int]
    taxonomy: Taxonomy
    def __init__(self, taxonomy: _Optional[_Union[Taxonomy, _Mapping]] = ...) -> None: ...

class UpdateTaxonomyResponse(_message.Message):
    __slots__ = ["taxonomy"]
    TAXONOMY_FIELD_NUMBER: _ClassVar[int]
    taxonomy: Taxonomy
    def __init__(self, taxonomy: _Optional[_Union[Taxonomy, _Mapping]] = ...) -> None: ...
