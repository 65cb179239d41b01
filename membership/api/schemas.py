"""The API's schemas, in one place: pydantic models that validate requests (bodies and query
strings) and describe responses, and from which the OpenAPI document is generated (openapi.py).

Field rules here are about shape (types, lengths, enumerations, ranges a database can hold); the
meaning (a valid phone number, a unique email, a date of birth in the past) stays with the domain
validators the staff forms and the CSV import use (members.services.validate_member and kin)."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema

from membership.members.models import INTERACTION_CHANNELS, MEMBER_STATUSES

MAX_ID = 2**31 - 1
MAX_LIMIT = 100
DEFAULT_LIMIT = 50


def _no_control(value: str) -> str:
    # Text the database can store: no lone surrogates (not UTF-8) and no NUL (PostgreSQL refuses it).
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains characters that are not valid text") from None
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


def _moment(value: datetime) -> datetime:
    value = value.astimezone(timezone.utc)
    if not 1900 <= value.year <= 2999:
        raise ValueError("use a time between the years 1900 and 2999")
    return value


def _day(value: date) -> date:
    if not 1900 <= value.year <= 2999:
        raise ValueError("use a date between the years 1900 and 2999")
    return value


# The documented schema says what the validators check (years 1900 to 2999, a zone offset), so a
# client generating requests from the document sends nothing it would refuse.
YEARS = r"^(19|2[0-9])[0-9]{2}-"
Text = Annotated[str, AfterValidator(_no_control)]
Moment = Annotated[AwareDatetime, AfterValidator(_moment),
                   WithJsonSchema({"type": "string", "format": "date-time",
                                   "pattern": YEARS + r".*(Z|z|[+-][0-9]{2}:[0-9]{2})$",
                                   "description": "ISO 8601 with a zone (Z or +06:00), years 1900 to 2999"})]
Day = Annotated[date, AfterValidator(_day),
                WithJsonSchema({"type": "string", "format": "date", "pattern": YEARS})]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- errors


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable: bad_request, unauthorized, forbidden, not_found, "
                                  "method_not_allowed, conflict, payload_too_large, unsupported_media_type, "
                                  "validation_failed, rate_limited")
    message: str = Field(description="for people")
    details: list[dict[str, Any]] | dict[str, Any] | None = Field(
        default=None, description="for validation errors: the fields at fault, as [{field, message}]")


class Error(BaseModel):
    """Every error under /api/v1 has this shape."""
    error: ErrorBody


class Links(BaseModel):
    next: str | None = Field(description="the next page (same filters), or null on the last page")


# ---------------------------------------------------------------- query strings


class Page(Strict):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="items per page")
    after: int = Field(0, ge=0, le=MAX_ID, description="the id of the last item of the previous page (links.next "
                                                       "sets it): items come in id order, so a sync can resume")


class MemberQuery(Page):
    q: Annotated[Text, Field(max_length=200, description="names, email, member number or phone, partial")] | None = None
    status: Literal[MEMBER_STATUSES] | None = None  # type: ignore[valid-type]
    plan_id: Id | None = None
    email: Annotated[Text, Field(max_length=254, description="exact, case-insensitive")] | None = None
    external_id: Annotated[Text, Field(max_length=64)] | None = None
    updated_since: Moment | None = Field(None, description="changed at or after this time (for sync)")


class TermQuery(Page):
    member_id: Id | None = None
    status: Literal["pending", "active", "grace", "lapsed", "cancelled", "upcoming", "renewed"] | None = None


class PaymentQuery(Page):
    member_id: Id | None = None
    received_since: Moment | None = None
    received_before: Moment | None = None


class EventQuery(Page):
    status: Literal["draft", "published", "cancelled"] | None = None
    starts_after: Moment | None = None
    starts_before: Moment | None = None


class RegistrationQuery(Page):
    event_id: Id | None = None
    member_id: Id | None = None
    status: Literal["pending", "confirmed", "waitlisted", "cancelled", "attended", "no_show"] | None = None


class ActivityQuery(Page):
    member_id: Id | None = None
    kind: Annotated[str, Field(max_length=40, pattern=r"^[a-z_]+$")] | None = None
    since: Moment | None = None


# ---------------------------------------------------------------- members

Name = Annotated[Text, Field(max_length=100)]


class MemberWrite(Strict):
    first_name: Name | None = None
    last_name: Name | None = None
    email: Annotated[Text, Field(max_length=254)] | None = None
    phone: Annotated[Text, Field(max_length=40, description="E.164 or local to the association's region")] | None = None
    address_line1: Annotated[Text, Field(max_length=200)] | None = None
    address_line2: Annotated[Text, Field(max_length=200)] | None = None
    city: Name | None = None
    postcode: Annotated[Text, Field(max_length=20)] | None = None
    country: Annotated[str, Field(pattern=r"^[A-Za-z]{2}$", description="ISO 3166 alpha-2")] | None = None
    date_of_birth: Day | None = None
    job_title: Name | None = None
    joined_on: Day | None = Field(None, description="default today (the association's day)")
    language: Literal["en", "bn"] | None = None
    marketing_opt_in: bool | None = None
    directory_opt_in: bool | None = None
    notes: Annotated[Text, Field(max_length=5000)] | None = None
    external_id: Annotated[Text, Field(max_length=64, description="your system's id for this member")] | None = None


class MemberCreate(MemberWrite):
    first_name: Name
    member_number: Annotated[Text, Field(max_length=32, description="default: the next number")] | None = None


class MemberUpdate(MemberWrite):
    """Only the fields sent are changed; null clears a field (first_name cannot be cleared)."""


class MemberOut(BaseModel):
    id: int
    member_number: str
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    postcode: str | None
    country: str | None
    date_of_birth: date | None
    organization_id: int | None
    is_primary_contact: bool
    job_title: str | None
    joined_on: date
    language: str
    marketing_opt_in: bool
    directory_opt_in: bool
    notes: str | None
    external_id: str | None
    status: str = Field(description="cached membership status: " + ", ".join(MEMBER_STATUSES))
    plan_id: int | None
    term_starts_on: date | None
    expires_on: date | None
    created_at: datetime
    updated_at: datetime


class MemberList(BaseModel):
    data: list[MemberOut]
    links: Links


# ---------------------------------------------------------------- terms, payments


class TermOut(BaseModel):
    id: int
    member_id: int | None
    organization_id: int | None
    plan_id: int
    plan_code: str
    starts_on: date
    ends_on: date | None = Field(description="null: lifetime")
    status: str
    fee_minor: int = Field(description="in minor units (paisa, cents)")
    currency: str
    source: str
    renews_id: int | None
    awaiting_payment: bool
    awaiting_approval: bool
    paid_on: date | None
    cancelled_on: date | None
    created_at: datetime


class TermList(BaseModel):
    data: list[TermOut]
    links: Links


class PaymentOut(BaseModel):
    id: int
    member_id: int | None
    organization_id: int | None
    membership_id: int | None
    registration_id: int | None
    amount_minor: int
    currency: str
    method: str
    reference: str | None
    received_at: datetime
    receipt_number: str


class PaymentList(BaseModel):
    data: list[PaymentOut]
    links: Links


# ---------------------------------------------------------------- events, registrations


class EventOut(BaseModel):
    id: int
    title: str
    description: str | None
    starts_at: datetime
    ends_at: datetime
    venue: str | None
    online_url: str | None
    capacity: int | None = Field(description="null: unlimited")
    seats_taken: int
    waitlist_enabled: bool
    members_only: bool
    member_price_minor: int
    non_member_price_minor: int
    currency: str
    status: str
    registration_opens_at: datetime | None
    registration_closes_at: datetime | None


class EventList(BaseModel):
    data: list[EventOut]
    links: Links


class RegistrationOut(BaseModel):
    id: int
    event_id: int
    member_id: int | None
    guest_name: str | None
    guest_email: str | None
    status: str
    source: str
    price_minor: int
    currency: str
    registered_at: datetime
    cancelled_at: datetime | None
    checked_in_at: datetime | None


class RegistrationList(BaseModel):
    data: list[RegistrationOut]
    links: Links


class RegistrationCreate(Strict):
    """Register a member: confirmed if a seat is free, else waitlisted (the same rules as the portal)."""
    member_id: Id
    send_email: bool = Field(True, description="email the confirmation or waitlist notice")


# ---------------------------------------------------------------- activities

API_ACTIVITY_KINDS = ("website_visit", "external_contact")


class ActivityCreate(Strict):
    """A touchpoint recorded by another system; it counts towards the member's engagement."""
    member_id: Id
    kind: Literal[API_ACTIVITY_KINDS] = Field(  # type: ignore[valid-type]
        description="website_visit: the member used your website; external_contact: a call, meeting... "
                    "logged elsewhere (give the channel)")
    occurred_at: Moment = Field(description="when it happened (not in the future)")
    channel: Literal[INTERACTION_CHANNELS] | None = Field(  # type: ignore[valid-type]
        None, description="for external_contact")
    summary: Annotated[Text, Field(max_length=500, description="a short note, e.g. the page or the topic")] | None = None
    url: Annotated[Text, Field(max_length=500)] | None = None
    idempotency_key: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._:-]+$",
                                          description="send the same key again and the touchpoint is recorded once")] | None = None


class ActivityOut(BaseModel):
    id: int
    member_id: int
    kind: str
    occurred_at: datetime
    source_type: str | None
    source_id: int | None
    detail: dict[str, Any] | None


class ActivityList(BaseModel):
    data: list[ActivityOut]
    links: Links
