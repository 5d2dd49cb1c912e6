"""Request bodies of the write (ingest) API, validated before anything reaches the database.

Every string a producer sends ends up in a SQL column, so the rules are the columns' own:
the schema's lengths, no NUL (PostgreSQL text cannot hold it) and no lone UTF-16 surrogate
(no driver can encode it). Unknown fields are refused, so that a typo such as
``external_id`` for ``external_job_id`` is a 422 rather than a silently dropped value.
``metadata`` and ``attrs`` are JSON objects of at most :data:`MAX_JSON_BYTES` serialized.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from joblog._otel import is_hex_id
from joblog._storable import MAX_MESSAGE_CHARS, clean_message, dumps_attrs
from joblog.model import Level

__all__ = [
    "MAX_BATCH_EVENTS",
    "MAX_JSON_BYTES",
    "MAX_PLANNED_STEPS",
    "EventBatch",
    "EventIn",
    "JobCreate",
    "JobUpdate",
    "PlannedStepIn",
    "StepCreate",
    "StepFinish",
    "column_text",
    "json_object_text",
]

#: Largest ``metadata`` or ``attrs`` object, in bytes of compact UTF-8 JSON.
MAX_JSON_BYTES = 64 * 1024
MAX_BATCH_EVENTS = 1000
MAX_PLANNED_STEPS = 500
MAX_BIGINT = 2**63 - 1


def column_text(value: str) -> str:
    """``value`` if a text column of every backend can hold it, else ValueError."""
    if value.isascii():  # the common case: no lone surrogate possible
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


#: Level names as producers usually spell them, to their stored value (others: Level.parse).
_LEVEL_NAMES = {
    spelled: Level.parse(name).value
    for name in ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL", "FATAL")
    for spelled in (name, name.lower(), name.capitalize())
}


def _free_text(value: str) -> str:
    """Messages are kept, not refused: NUL and lone surrogates become U+FFFD, then cut."""
    if value.isascii() and len(value) <= MAX_MESSAGE_CHARS and "\x00" not in value:
        return value  # already storable as it is
    value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return clean_message(value)


JobType = Annotated[str, Field(min_length=1, max_length=50), AfterValidator(column_text)]
Operation = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(column_text)]
#: IDs, names and owners: the schema's VARCHAR(255).
Identifier = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(column_text)]
#: Messages are cut to joblog's limit (with a marker), never refused for their length.
FreeText = Annotated[str, AfterValidator(_free_text)]
Weight = Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)]


def _plain_json(value: dict[str, Any]) -> str | None:
    """orjson's text of values parsed from JSON; None where it may differ from
    :func:`~joblog._storable.dumps_attrs`' own: orjson writes NaN and Infinity as
    ``null`` (that one names them), and refuses lone surrogates and huge integers."""
    try:
        encoded = orjson.dumps(value)
    except TypeError:
        return None
    return None if b"null" in encoded else encoded.decode()


def json_object_text(value: dict[str, Any], what: str) -> str | None:
    """The object as JSON every backend stores (no NaN, no NUL), within the size cap."""
    text = dumps_attrs(value, _plain_json)
    if text is not None:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        if len(text.encode("utf-8")) > MAX_JSON_BYTES:
            raise ValueError(f"{what} must serialize to at most {MAX_JSON_BYTES} bytes of JSON")
    return text


#: The timestamps producers send: RFC 3339 with seconds, optional fraction and offset.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(Z|[+-]\d\d:\d\d)?", re.ASCII)


def _timestamp(value: Any, parse: ValidatorFunctionWrapHandler) -> datetime:
    """A timestamp as naive UTC, the form the columns hold (one without offset is UTC).

    The common RFC 3339 forms are read here without the tzinfo calls and ``replace()``
    that dominated a whole event's validation; anything else is pydantic's to parse.
    """
    utc: datetime | None = None
    if isinstance(value, str) and (form := _RFC3339.fullmatch(value)) is not None:
        offset = form.group(1)
        try:
            if offset is None or offset == "Z":
                utc = datetime.fromisoformat(value[:-1] if offset else value)
            else:
                moment = datetime.fromisoformat(value)  # checks the offset
                utc = datetime.fromisoformat(value[:-6]) - moment.utcoffset()  # type: ignore[operator]
        except ValueError:  # e.g. February 30th: pydantic says what is wrong
            utc = None
        except OverflowError:
            raise ValueError("ts is out of range") from None
    if utc is None:
        parsed: datetime = parse(value)
        try:
            utc = parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
        except OverflowError:
            raise ValueError("ts is out of range") from None
    if not 1970 <= utc.year <= 9999:  # MariaDB's DATETIME starts at 1000; be plain
        raise ValueError("ts must be between 1970 and 9999")
    return utc


#: An event's time, held as naive UTC.
Timestamp = Annotated[datetime, WrapValidator(_timestamp)]


def _attrs_json(value: Any) -> str | None:
    """An event's ``attrs`` object as the JSON text to store (an empty one: none)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return json_object_text(value, "attrs") if value else None


#: Sent as a JSON object, held as the JSON text to store: made once, while validating
#: (a private attribute beside the object cost more than the rest of the event).
AttrsJson = Annotated[
    str | None,
    PlainValidator(_attrs_json, json_schema_input_type=dict[str, Any] | None),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class PlannedStepIn(_Body):
    name: Identifier
    weight: Weight = 1.0


class JobCreate(_Body):
    """``POST /api/v1/jobs``: start a job (running, or pending with ``start: false``)."""

    job_type: JobType
    operation: Operation
    external_job_id: Identifier | None = None
    context_id: Identifier | None = None
    owner: Identifier | None = None
    parent: Identifier | None = Field(
        default=None, description="The parent job, by any ID (UUID or external ID)."
    )
    steps: list[Identifier | PlannedStepIn] = Field(
        default_factory=list,
        max_length=MAX_PLANNED_STEPS,
        description='Planned steps: names, or {"name", "weight"} objects.',
    )
    metadata: dict[str, Any] | None = None
    start: bool = True

    @field_validator("metadata")
    @classmethod
    def _metadata_storable(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if not value:
            return None
        text = json_object_text(value, "metadata")
        return None if text is None else dict(json.loads(text))

    def planned(self) -> list[PlannedStepIn]:
        return [PlannedStepIn(name=s) if isinstance(s, str) else s for s in self.steps]


class StepCreate(_Body):
    """``POST /api/v1/jobs/{id}/steps``: start the job's next step."""

    name: Identifier
    weight: Weight | None = None
    allow_failure: bool = False


class StepFinish(_Body):
    """``PATCH /api/v1/jobs/{id}/steps/{seq}``: end a running step."""

    status: Literal["completed", "failed", "skipped"]
    error_message: FreeText | None = None


class JobUpdate(_Body):
    """``PATCH /api/v1/jobs/{id}``: progress (never backwards) and/or the job's end."""

    percent: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    status: Literal["completed", "failed", "cancelled"] | None = None
    error_message: FreeText | None = None


class EventIn(_Body):
    """One log event; it names its job by ``job_id`` or ``external_job_id``."""

    job_id: Identifier | None = None
    external_job_id: Identifier | None = None
    step_seq: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    step_id: Annotated[int, Field(ge=-MAX_BIGINT, le=MAX_BIGINT)] | None = Field(
        default=None, description="A step's ID as the API returns it (a string of digits)."
    )
    level: str = Field(max_length=16, description="DEBUG, INFO, WARN (WARNING) or ERROR")
    message: FreeText
    attrs: AttrsJson = None
    ts: Timestamp | None = Field(default=None, description="ISO-8601; default: now")
    trace_id: str | None = Field(
        default=None,
        max_length=32,
        description="OpenTelemetry trace ID: 32 hex digits, not all zero.",
    )
    span_id: str | None = Field(
        default=None, max_length=16, description="OpenTelemetry span ID: 16 hex digits."
    )

    @field_validator("trace_id", "span_id")
    @classmethod
    def _hex_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        digits = 32 if info.field_name == "trace_id" else 16
        value = value.lower()
        if not is_hex_id(value, digits):
            raise ValueError(f"must be {digits} hex digits, not all zero")
        return value

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        return _LEVEL_NAMES.get(value) or Level.parse(value).value

    @model_validator(mode="after")
    def _names_a_job(self) -> EventIn:
        if self.job_id is None and self.external_job_id is None:
            raise ValueError("an event needs job_id or external_job_id")
        if self.step_seq is not None and self.step_id is not None:
            raise ValueError("name the step by step_seq or step_id, not both")
        if self.span_id is not None and self.trace_id is None:
            raise ValueError("a span_id needs its trace_id")
        return self

    def attrs_text(self) -> str | None:
        """``attrs`` as the JSON text to store (made once, while validating)."""
        return self.attrs


class EventBatch(_Body):
    """``POST /api/v1/events``: up to 1000 events, stored once per ``batch_key``."""

    batch_key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=128,
            pattern=r"^[\x21-\x7e]+$",
            description="Chosen by the producer, unique per batch (a UUID works); a batch "
            "sent again under the same key is not stored again.",
        ),
    ]
    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)
