"""Campaign operations: compose, audience (with who is left out and why), preview, test, schedule,
queue through the outbox exactly once, and the report.

Every function takes a session and explicit `now`/`actor`; it flushes, the caller commits (the
scheduler's `queue_due` commits per batch through its `on_batch` callback).

Exactly once:
- "Send now" and "Schedule" move a draft to "scheduled" with a conditional UPDATE (WHERE status is
  still draft): of two clicks, even at the same moment, one wins and the other gets a Conflict;
- the scheduler job takes a lease, and moves the campaign to "sending" the same way;
- each email's dedupe key is "campaign:<campaign>:member:<member>", inserted with ON CONFLICT DO
  NOTHING: a restarted job (a crash in the middle), or two jobs at once, skip what is queued.

Rate: each email's next_attempt_at is the moment the queueing started plus one minute per
CAMPAIGN_RATE_PER_MINUTE emails before it, so the outbox's dispatcher (every minute) hands the
mail server at most that many of the campaign's emails a minute; other emails are not held up.
"""
from __future__ import annotations

from flask_babel import gettext as _

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from flask import current_app
from sqlalchemy import Select, and_, case, false, func, or_, select, update
from sqlalchemy.orm import Session, selectinload
from werkzeug.datastructures import MultiDict

from membership.campaigns.models import CAMPAIGN_KINDS, SOURCE_TYPE, Campaign, CampaignVersion
from membership.core.errors import Conflict, ValidationError
from membership.core.i18n import LANGUAGES
from membership.core.models import Activity, AuditLog
from membership.core.services import record_audit
from membership.core.validation import clean_text
from membership.members.models import Member
from membership.members.queries import MemberFilter, member_query, resolve_segment
from membership.notifications import outbox, templating
from membership.notifications.models import OutboxMessage

log = logging.getLogger(__name__)

TEMPLATE_KEY = "campaign"
CURRENT_STATUSES = ("active", "grace")
DEFAULT_RATE = 300
MAX_SCHEDULE_DAYS = 366
# Why a member the filter matches gets no email, in the order they are judged.
LEFT_OUT = ("erased", "not_current", "no_email", "bouncing", "unsubscribed", "no_opt_in")
FIGURES = ("queued", "sent", "failed", "bounced", "cancelled", "opened", "clicked", "unsubscribed")
_FILTER_KEYS = ("segment", "status", "plan_id", "tag", "engagement", "risk")


def default_language() -> str:
    language = current_app.config.get("DEFAULT_LANGUAGE") or "en"
    return language if language in LANGUAGES else LANGUAGES[0]


def rate_per_minute() -> int:
    try:
        rate = int(current_app.config.get("CAMPAIGN_RATE_PER_MINUTE") or DEFAULT_RATE)
    except (TypeError, ValueError):
        rate = DEFAULT_RATE
    return max(1, rate)


# ---------------------------------------------------------------- compose


@dataclass
class VersionText:
    subject: str = ""
    body_text: str = ""
    body_html: str = ""

    @property
    def is_blank(self) -> bool:
        return not (self.subject.strip() or self.body_text.strip() or self.body_html.strip())


def parse_filters(session: Session, filters: dict[str, Any]) -> MemberFilter:
    """The campaign's member filter, with its saved segment attached. Raises ValidationError
    (field "filters", or the bad argument's name) for a filter that does not parse."""
    f = MemberFilter.from_args(MultiDict(_pairs(filters or {})))
    resolve_segment(session, f)
    if f.errors:
        name, message = next(iter(f.errors.items()))
        raise ValidationError(message, field=name)
    return f


def _pairs(args: dict) -> list[tuple[str, str]]:
    pairs = []
    for key, value in args.items():
        for v in (value if isinstance(value, list) else [value]):
            if v not in (None, ""):
                pairs.append((key, str(v)))
    return pairs


def clean_filters(session: Session, filters: dict[str, Any]) -> dict[str, Any]:
    """Only the member-list arguments a campaign takes, checked; as stored on the campaign."""
    kept = {k: v for k, v in (filters or {}).items() if k in _FILTER_KEYS and v not in (None, "", [])}
    f = parse_filters(session, kept)
    return {k: v for k, v in f.as_args().items() if k != "sort"}


def save_campaign(session: Session, campaign: Campaign | None, *, name: str, kind: str, filters: dict[str, Any],
                  versions: dict[str, VersionText], actor, now: datetime) -> Campaign:
    """Create (campaign None) or change a draft campaign. Everything is checked before anything is
    written: ValidationError names the field ("name", "kind", "segment"..., or "<lang>_subject",
    "<lang>_body_text", "<lang>_body_html"); Conflict when the campaign is no longer a draft.
    The version in the default language is required; another language's is optional (all blank:
    none, and members with that language get the default one)."""
    if campaign is not None and campaign.status != "draft":
        raise Conflict(_("Only a draft campaign can be changed; this one is scheduled or sent."))
    name = clean_text(name, field="name", label="Name", max_length=120, required=True)
    if kind not in CAMPAIGN_KINDS:
        raise ValidationError(_("Choose marketing or service announcement."), field="kind")
    stored_filters = clean_filters(session, filters)
    checked: dict[str, templating.Source] = {}
    default = default_language()
    for language in LANGUAGES:
        text = versions.get(language) or VersionText()
        if text.is_blank:
            if language == default:
                raise ValidationError(_("Enter the subject and text of this version (it is the one every member "
                                      "without a version in their own language gets)."), field=f"{language}_subject")
            continue
        try:  # compiles and renders against sample data, in the sandbox
            templating.check_template(TEMPLATE_KEY, subject=text.subject, body_text=text.body_text,
                                      body_html=text.body_html or None, now=now)
        except templating.TemplateProblem as exc:
            raise ValidationError(exc.message, field=f"{language}_{exc.field or 'body_text'}") from exc
        checked[language] = templating.Source(text.subject.strip(), text.body_text.replace("\r\n", "\n"),
                                              (text.body_html or "").replace("\r\n", "\n").strip() or None)
    created = campaign is None
    if created:
        campaign = Campaign(name=name, kind=kind, status="draft", filters=stored_filters, created_at=now,
                            created_by_id=getattr(actor, "id", None), updated_at=now)
        session.add(campaign)
    else:
        campaign.name, campaign.kind, campaign.filters, campaign.updated_at = name, kind, stored_filters, now
    for language in LANGUAGES:
        row = campaign.version(language)
        source = checked.get(language)
        if source is None:
            if row is not None:
                campaign.versions.remove(row)
            continue
        if row is None:
            row = CampaignVersion(language=language, subject=source.subject, body_text=source.body_text,
                                  body_html=source.body_html)
            campaign.versions.append(row)
        else:
            row.subject, row.body_text, row.body_html = source.subject, source.body_text, source.body_html
    session.flush()
    record_audit(session, actor=actor, action="campaign.create" if created else "campaign.update", entity=campaign,
                 now=now, summary=f"{'Created' if created else 'Changed'} campaign “{name}” ({kind})",
                 changes={"filters": stored_filters, "languages": sorted(checked)})
    return campaign


def delete_draft(session: Session, campaign: Campaign, *, actor, now: datetime) -> None:
    if campaign.status != "draft":
        raise Conflict(_("Only a draft campaign can be deleted."))
    record_audit(session, actor=actor, action="campaign.delete", entity=campaign, now=now,
                 summary=f"Deleted draft campaign “{campaign.name}”")
    session.delete(campaign)
    session.flush()


# ---------------------------------------------------------------- audience


def _reason_column(kind: str):
    unsubscribed = select(AuditLog.id).where(AuditLog.member_id == Member.id,
                                             AuditLog.action == "member.unsubscribe").exists()
    whens = [(Member.erased_at.is_not(None), "erased")]
    if kind == "service":
        whens.append((or_(Member.status.is_(None), Member.status.not_in(CURRENT_STATUSES)), "not_current"))
    whens += [(or_(Member.email.is_(None), Member.email == ""), "no_email"),
              (Member.email_bouncing.is_(True), "bouncing")]
    if kind == "marketing":
        not_in = or_(Member.marketing_opt_in.is_(None), Member.marketing_opt_in == false())
        whens += [(and_(not_in, unsubscribed), "unsubscribed"), (not_in, "no_opt_in")]
    return case(*whens, else_="recipient").label("reason")


def audience_query(session: Session, filters: dict[str, Any], kind: str) -> Select:
    """SELECT (member id, reason) of every member the filter matches, erased ones included:
    reason "recipient" for those who get the email, else one of LEFT_OUT."""
    f = parse_filters(session, filters)
    f.sort = "name"
    base = member_query(f, include_erased=True).order_by(None)
    return base.with_only_columns(Member.id.label("member_id"), _reason_column(kind))


def audience_counts(session: Session, campaign_or_filters, kind: str | None = None) -> dict[str, int]:
    """{"recipient": n, "no_opt_in": n, ...} (every reason present, 0 when none)."""
    filters, kind = _filters_kind(campaign_or_filters, kind)
    sub = audience_query(session, filters, kind).subquery()
    counts = dict.fromkeys(("recipient", *LEFT_OUT), 0)
    for reason, n in session.execute(select(sub.c.reason, func.count()).group_by(sub.c.reason)):
        counts[reason] = n
    if kind != "service":
        counts.pop("not_current")
    if kind != "marketing":
        counts.pop("unsubscribed")
        counts.pop("no_opt_in")
    return counts


def audience_members(session: Session, campaign: Campaign, reason: str) -> Select:
    """SELECT of Member rows with the given reason (for a paginated list), by name."""
    sub = audience_query(session, campaign.filters, campaign.kind).subquery()
    return (select(Member).join(sub, sub.c.member_id == Member.id).where(sub.c.reason == reason)
            .order_by(Member.last_name, Member.first_name, Member.id))


def campaignable_members(session: Session, *, segment_id: int | None = None, filters: dict[str, Any] | None = None,
                         kind: str = "marketing") -> Select:
    """SELECT of the ids of the members an email to a saved segment (or member-list filters) may
    go to, with a campaign's rules: marketing only to members who opted in; service to current
    members; never to erased members, bouncing addresses or members without an address. Other
    code (survey invitations) uses it as `Member.id.in_(campaignable_members(...))`."""
    if kind not in CAMPAIGN_KINDS:
        raise ValueError(f"unknown campaign kind {kind!r}")
    args = dict(filters or {})
    if segment_id is not None:
        args["segment"] = segment_id
    sub = audience_query(session, args, kind).subquery()
    return select(sub.c.member_id).where(sub.c.reason == "recipient")


def _filters_kind(campaign_or_filters, kind):
    if isinstance(campaign_or_filters, Campaign):
        return campaign_or_filters.filters or {}, kind or campaign_or_filters.kind
    return campaign_or_filters or {}, kind or "marketing"


def describe_filters(session: Session, filters: dict[str, Any]) -> list[str]:
    """The campaign's recipients in words, e.g. ["Segment: Board", "Status: active, grace"]."""
    from membership.engagement.models import Segment
    from membership.plans.models import Plan

    out = []
    for key, value in (filters or {}).items():
        values = value if isinstance(value, list) else [value]
        if key == "segment":
            row = session.get(Segment, int(value))
            out.append(f"Segment: {row.name if row else '(deleted)'}")
        elif key == "plan_id":
            row = session.get(Plan, int(value))
            out.append(f"Plan: {row.name if row else '(deleted)'}")
        else:
            out.append(f"{key.replace('_', ' ').capitalize()}: {', '.join(str(v) for v in values)}")
    return out or ["All members"]


# ---------------------------------------------------------------- rendering


def source_for(campaign: Campaign, language: str | None) -> tuple[CampaignVersion, templating.Source]:
    """The version for a member's language: theirs if the campaign has it, else the default
    language's, else the first one."""
    version = (campaign.version(language or "") or campaign.version(default_language())
               or (campaign.versions[0] if campaign.versions else None))
    if version is None:
        raise ValidationError(_("This campaign has no text yet."), field="subject")
    # is_custom=False: a failure is this campaign's error, never a fall-back to another text
    return version, templating.Source(version.subject, version.body_text, version.body_html or None, False)


def service_reason() -> str:
    """Completes "You received this email because ..." in a service announcement's footer."""
    name = current_app.config.get("ASSOCIATION_NAME") or "Samiti"
    return f"you are a current member of {name}: service announcements go to every member."


def _reason_text(campaign: Campaign, ctx: dict[str, Any]) -> str | None:
    return service_reason() if campaign.kind == "service" else None


def unsubscribe_link(member, campaign: Campaign) -> str:
    from membership.notifications.unsubscribe import unsubscribe_url
    return unsubscribe_url(member, campaign.id)


def preview(session: Session, campaign: Campaign, member: Member | None, *, now: datetime,
            language: str | None = None) -> tuple[templating.Rendered, CampaignVersion]:
    """The email as `member` would get it (sample data without one), footer included. Raises
    ValidationError (with the field) when the text cannot render for this member."""
    version, source = source_for(campaign, language or getattr(member, "language", None))
    link = templating.link("/mail/unsubscribe/preview-token") if campaign.kind == "marketing" else ""
    ctx = templating.sample_context(TEMPLATE_KEY, now=now, member=member)
    ctx["unsubscribe_link"] = link
    try:
        rendered, _ = templating.render_email(session, TEMPLATE_KEY, ctx, category=campaign.kind,
                                              reason=_reason_text(campaign, ctx), unsubscribe_link=link,
                                              source=source)
    except templating.TemplateProblem as exc:
        raise ValidationError(exc.message, field=f"{version.language}_{exc.field or 'body_text'}") from exc
    return rendered, version


def send_test(session: Session, campaign: Campaign, *, user, member: Member | None, now: datetime,
              language: str | None = None) -> OutboxMessage:
    """Queue the campaign, as `member` would get it, to the staff `user`'s own address, marked as a
    test. It names no member (no opens or clicks are recorded, nothing counts in the report)."""
    import secrets

    if not getattr(user, "email", None):
        raise ValidationError(_("Your account has no email address to send the test to."))
    version, source = source_for(campaign, language or getattr(member, "language", None))
    test_source = templating.Source("[Test] " + source.subject, source.body_text, source.body_html, False)
    context: dict[str, Any] = {"member": member} if member is not None else {}
    key = f"campaign-test:{campaign.id}:{secrets.token_hex(8)}"
    try:
        values = outbox.prepare(session, template_key=TEMPLATE_KEY, dedupe_key=key, now=now, to_address=user.email,
                                to_name=user.name or user.email, context=context, category="staff",
                                reason=f"this is a test of the campaign “{campaign.name}” ({version.language}); "
                                "members get the same text with their own footer",
                                template_source=test_source, check_existing=False)
    except templating.TemplateProblem as exc:
        raise ValidationError(exc.message, field=f"{version.language}_{exc.field or 'body_text'}") from exc
    outbox.enqueue_many(session, [values] if values else [])
    row = session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == key))
    if row is None:  # pragma: no cover - a fresh random key and an address always give a row
        raise ValidationError(_("The test could not be queued."))
    record_audit(session, actor=user, action="campaign.test", entity=campaign, now=now,
                 summary=f"Test of campaign “{campaign.name}” sent to {user.email}")
    return row


# ---------------------------------------------------------------- schedule


def schedule(session: Session, campaign: Campaign, *, send_at: datetime, actor, now: datetime) -> None:
    """Move a draft to "scheduled" for `send_at` (now, for Send now). Checks that it has
    recipients and renders for the first of them; raises ValidationError, or Conflict when the
    campaign is no longer a draft (a second click, another staff member). Caller commits."""
    if send_at < now - timedelta(minutes=1):
        raise ValidationError(_("Choose a moment in the future (or use Send now)."), field="send_at")
    if send_at > now + timedelta(days=MAX_SCHEDULE_DAYS):
        raise ValidationError(_("Schedule it at most a year ahead."), field="send_at")
    if campaign.status != "draft":
        raise Conflict(_("This campaign is already scheduled or sent; nothing was changed."))
    counts = audience_counts(session, campaign)
    if not counts["recipient"]:
        raise ValidationError(_("Nobody would get this campaign: check the recipients and who is left out."))
    first = session.scalar(select(Member).where(Member.id.in_(
        campaignable_members(session, filters=campaign.filters, kind=campaign.kind))).order_by(Member.id).limit(1))
    preview(session, campaign, first, now=now)
    for version in campaign.versions:
        preview(session, campaign, first, now=now, language=version.language)
    moved = session.execute(update(Campaign).where(Campaign.id == campaign.id, Campaign.status == "draft")
                            .values(status="scheduled", send_at=send_at, updated_at=now)
                            .execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        raise Conflict(_("This campaign is already scheduled or sent; nothing was changed."))
    record_audit(session, actor=actor, action="campaign.schedule", entity=campaign, now=now,
                 summary=f"Campaign “{campaign.name}” scheduled for {send_at.isoformat(timespec='minutes')} "
                 f"({counts['recipient']} recipients now)", changes={"send_at": send_at})
    session.expire(campaign)


def unschedule(session: Session, campaign: Campaign, *, actor, now: datetime) -> None:
    """Back to draft, while the scheduler has not started it. Raises Conflict otherwise."""
    moved = session.execute(update(Campaign).where(Campaign.id == campaign.id, Campaign.status == "scheduled")
                            .values(status="draft", send_at=None, updated_at=now)
                            .execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        raise Conflict(_("This campaign is not scheduled any more (sending has started, or it was already "
                       "put back); nothing was changed."))
    record_audit(session, actor=actor, action="campaign.unschedule", entity=campaign, now=now,
                 summary=f"Campaign “{campaign.name}” taken back to draft")
    session.expire(campaign)


# ---------------------------------------------------------------- queueing (the scheduler job)


def dedupe_key(campaign_id: int, member_id: int) -> str:
    return f"campaign:{campaign_id}:member:{member_id}"


def queue_due(session: Session, *, now: datetime, batch_size: int = 500, on_batch: Callable[[], None] | None = None,
              on_queued: Callable[[int], None] | None = None) -> dict[str, int]:
    """Queue the emails of every campaign due as of `now` (scheduled, or left "sending" by a run
    that stopped). Commits through `on_batch` after each batch (the scheduler's checkpoint)."""
    on_batch = on_batch or session.commit
    counts = {"campaigns": 0, "queued": 0, "skipped": 0}
    due = list(session.scalars(select(Campaign.id).where(Campaign.status.in_(("scheduled", "sending")),
                                                         Campaign.send_at <= now)
                               .order_by(Campaign.send_at, Campaign.id)))
    for campaign_id in due:
        started = session.execute(
            update(Campaign).where(Campaign.id == campaign_id, Campaign.status.in_(("scheduled", "sending")))
            .values(status="sending", queue_started_at=func.coalesce(Campaign.queue_started_at, now))
            .execution_options(synchronize_session=False)).rowcount
        if not started:  # taken back to draft meanwhile
            continue
        on_batch()
        campaign = session.get(Campaign, campaign_id, populate_existing=True)
        try:
            result = queue_campaign(session, campaign, now=now, batch_size=batch_size, on_batch=on_batch,
                                    on_queued=on_queued)
        except ValidationError as exc:
            # its recipients cannot be worked out any more (the saved segment was deleted): back to
            # draft, with the reason in the audit trail, rather than failing every minute
            session.rollback()
            _stop(session, campaign_id, now=now, problem=exc.message)
            on_batch()
            counts["stopped"] = counts.get("stopped", 0) + 1
            continue
        total = session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.source_type == SOURCE_TYPE, OutboxMessage.source_id == campaign_id))
        session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.status == "sending")
                        .values(status="sent", queued_at=now, recipient_count=total)
                        .execution_options(synchronize_session=False))
        record_audit(session, actor=None, action="campaign.queued", entity=campaign, now=now,
                     summary=f"Campaign “{campaign.name}”: {total} emails queued")
        on_batch()
        counts["campaigns"] += 1
        counts["queued"] += result["queued"]
        counts["skipped"] += result["skipped"]
    refreshed = refresh_figures(session, now=now)
    if refreshed:
        counts["figures_refreshed"] = refreshed
    return counts


def _stop(session: Session, campaign_id: int, *, now: datetime, problem: str) -> None:
    campaign = session.get(Campaign, campaign_id, populate_existing=True)
    queued = session.scalar(select(func.count()).select_from(OutboxMessage).where(_messages(campaign_id)))
    status = "sent" if queued else "draft"
    session.execute(update(Campaign).where(Campaign.id == campaign_id).values(
        status=status, send_at=campaign.send_at if queued else None, queued_at=now if queued else None,
        recipient_count=queued if queued else None, updated_at=now).execution_options(synchronize_session=False))
    record_audit(session, actor=None, action="campaign.stopped", entity=campaign, now=now,
                 summary=f"Campaign “{campaign.name}” could not be sent: {problem} "
                 + (f"({queued} emails were queued before)" if queued else "(back to draft)"))


def queue_campaign(session: Session, campaign: Campaign, *, now: datetime, batch_size: int = 500,
                   on_batch: Callable[[], None] | None = None,
                   on_queued: Callable[[int], None] | None = None) -> dict[str, int]:
    """Put one outbox row per recipient, skipping those already queued (a resumed or concurrent
    run): the dedupe key settles any race. `on_batch` after each batch (commit); `on_queued(n)`
    after each email (tests break a run there). Returns {"queued", "skipped"}."""
    on_batch = on_batch or (lambda: None)
    recipients = list(session.scalars(_ordered_recipients(session, campaign)))
    done = set(session.scalars(select(OutboxMessage.member_id).where(
        OutboxMessage.source_type == SOURCE_TYPE, OutboxMessage.source_id == campaign.id)))
    rate = rate_per_minute()
    base = campaign.queue_started_at or now
    sources = {v.language: source_for(campaign, v.language)[1] for v in campaign.versions}
    fallback = source_for(campaign, None)[1]
    # marketing: no reason in the footer (the unsubscribe line is there); "" spares rendering one
    reason = service_reason() if campaign.kind == "service" else ""
    queued = skipped = 0
    for start in range(0, len(recipients), batch_size):
        chunk = [(start + i, mid) for i, mid in enumerate(recipients[start:start + batch_size]) if mid not in done]
        if not chunk:
            continue
        members = {m.id: m for m in session.scalars(select(Member).where(Member.id.in_([mid for _, mid in chunk]))
                                                     .options(selectinload(Member.plan)))}
        rows = []
        for position, member_id in chunk:
            member = members.get(member_id)
            if member is None:
                continue
            values = _prepare(session, campaign, member, sources.get(member.language, fallback), reason, now)
            if values is None:
                skipped += 1
                continue
            values["next_attempt_at"] = base + timedelta(minutes=position // rate)
            rows.append(values)
        inserted = outbox.enqueue_many(session, rows)
        queued += len(inserted)
        if on_queued is not None:
            for _row in inserted:
                on_queued(1)
        on_batch()
    return {"queued": queued, "skipped": skipped}


def _ordered_recipients(session: Session, campaign: Campaign) -> Select:
    sub = audience_query(session, campaign.filters, campaign.kind).subquery()
    return select(sub.c.member_id).where(sub.c.reason == "recipient").order_by(sub.c.member_id)


def _prepare(session: Session, campaign: Campaign, member: Member, source: templating.Source, reason: str,
             now: datetime) -> dict[str, Any] | None:
    try:
        return outbox.prepare(session, template_key=TEMPLATE_KEY, dedupe_key=dedupe_key(campaign.id, member.id),
                              now=now, member=member, category=campaign.kind, reason=reason,
                              source=campaign, check_existing=False, template_source=source,
                              unsubscribe_link=unsubscribe_link(member, campaign) if campaign.kind == "marketing"
                              else None)
    except (templating.TemplateProblem, ValidationError) as exc:
        # this member's details break the text (or their address is not valid): left out, logged
        log.warning("campaign %s: not queued for member %s: %s", campaign.id, member.id, exc)
        return None


# ---------------------------------------------------------------- report


_OPENED = "email_opened"
_CLICKED = "email_clicked"


def _messages(campaign_id: int):
    return (OutboxMessage.source_type == SOURCE_TYPE) & (OutboxMessage.source_id == campaign_id)


def _tracked(session: Session, kind: str, campaign_id: int):
    """SELECT of the `kind` activities recorded against the campaign's emails. The ids of those
    emails lie between the campaign's lowest and highest outbox id (one job run queued them,
    mostly one after the other), and saying so lets the database read just those activities
    through ix_activity_source, whatever join it picks (without it PostgreSQL hashed all of a
    kind's activities: 540 ms instead of 20 at a million). SQLite walks the campaign's emails
    and probes the activities already, and would move the range onto the outbox table's rowid
    (reading the wide rows instead of the covering index), so it gets the plain join."""
    stmt = (select(Activity).join(OutboxMessage, and_(Activity.source_type == "outboxmessage",
                                                      Activity.source_id == OutboxMessage.id))
            .where(_messages(campaign_id), Activity.kind == kind))
    if session.get_bind().dialect.name != "postgresql":
        return stmt
    low, high = session.execute(select(func.min(OutboxMessage.id), func.max(OutboxMessage.id))
                                .where(_messages(campaign_id))).one()
    if low is not None:
        stmt = stmt.where(Activity.source_type == "outboxmessage", Activity.source_id.between(low, high))
    return stmt


def report(session: Session, campaign: Campaign) -> dict[str, Any]:
    """The campaign's figures: queued (waiting or being sent), sent, failed, bounced (failed, the
    address now flagged as bouncing), cancelled (e.g. the member unsubscribed before it went),
    opened, clicked (members who clicked any link), unsubscribed (through this campaign's link),
    and clicks per link [(url, members)], most clicked first."""
    figures = dict.fromkeys(FIGURES, 0)
    for status, n in session.execute(select(OutboxMessage.status, func.count()).where(_messages(campaign.id))
                                     .group_by(OutboxMessage.status)):
        key = "queued" if status in ("queued", "sending") else status
        figures[key] = figures.get(key, 0) + n
    figures["bounced"] = session.scalar(select(func.count()).select_from(OutboxMessage).join(
        Member, Member.id == OutboxMessage.member_id).where(
        _messages(campaign.id), OutboxMessage.status == "failed", Member.email_bouncing.is_(True))) or 0
    figures["opened"] = session.scalar(_tracked(session, _OPENED, campaign.id).with_only_columns(func.count())) or 0
    # the clicks themselves (one row per member and link: far fewer than the emails), counted here:
    # one pass over the campaign's emails instead of one for the members and one for the links
    clicks = session.execute(_tracked(session, _CLICKED, campaign.id).with_only_columns(
        Activity.source_id, Activity.detail["url"].as_string())).all()
    figures["clicked"] = len({message_id for message_id, _ in clicks})
    per_link: dict[str, set[int]] = {}
    for message_id, url in clicks:
        per_link.setdefault(url or "", set()).add(message_id)
    links = sorted(((url, len(ids)) for url, ids in per_link.items()), key=lambda item: (-item[1], item[0]))[:100]
    figures["unsubscribed"] = session.scalar(select(func.count()).select_from(Activity).where(
        Activity.source_type == SOURCE_TYPE, Activity.source_id == campaign.id,
        Activity.kind == "profile_updated")) or 0
    figures["total"] = sum(figures[k] for k in ("queued", "sent", "failed", "cancelled"))
    return {"figures": figures, "links": links}


LIST_FIGURES = ("total", "sent", "failed", "opened", "clicked", "unsubscribed")
FIGURES_EVERY = timedelta(minutes=10)
FIGURES_FOR = timedelta(days=90)


def list_figures(session: Session, campaigns: Iterable[Campaign]) -> dict[int, dict[str, int]]:
    """The figures of a page of campaigns, side by side (LIST_FIGURES): the stored ones where the
    job has refreshed them, counted now for the others (just sent, or never refreshed)."""
    campaigns = list(campaigns)
    out = {c.id: dict(c.figures) for c in campaigns if c.figures is not None}
    missing = [c.id for c in campaigns if c.figures is None]
    out.update(count_list_figures(session, missing))
    return out


def refresh_figures(session: Session, *, now: datetime, limit: int = 50) -> int:
    """Store the list figures of campaigns sent in the last FIGURES_FOR whose figures are older than
    FIGURES_EVERY (the send-campaigns job calls it). Returns how many were refreshed."""
    stale = list(session.scalars(select(Campaign.id).where(
        Campaign.status == "sent", Campaign.queued_at >= now - FIGURES_FOR,
        or_(Campaign.figures_at.is_(None), Campaign.figures_at < now - FIGURES_EVERY))
        .order_by(Campaign.figures_at.is_not(None), Campaign.figures_at, Campaign.id).limit(limit)))
    for campaign_id, figures in count_list_figures(session, stale).items():
        session.execute(update(Campaign).where(Campaign.id == campaign_id).values(figures=figures, figures_at=now)
                        .execution_options(synchronize_session=False))
    return len(stale)


def count_list_figures(session: Session, campaign_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """LIST_FIGURES of some campaigns, counted now (a few grouped queries for all of them)."""
    ids = list(campaign_ids)
    out = {cid: dict.fromkeys(LIST_FIGURES, 0) for cid in ids}
    if not ids:
        return out
    m = OutboxMessage
    for cid, status, n in session.execute(select(m.source_id, m.status, func.count()).where(
            m.source_type == SOURCE_TYPE, m.source_id.in_(ids)).group_by(m.source_id, m.status)):
        out[cid]["total"] += n
        if status in ("sent", "failed"):
            out[cid][status] += n
    for cid in ids:  # a campaign at a time, each through its own id range (see _tracked)
        out[cid]["opened"] = session.scalar(_tracked(session, _OPENED, cid).with_only_columns(func.count())) or 0
        out[cid]["clicked"] = session.scalar(_tracked(session, _CLICKED, cid).with_only_columns(
            func.count(func.distinct(Activity.source_id)))) or 0
    for cid, n in session.execute(select(Activity.source_id, func.count()).where(
            Activity.source_type == SOURCE_TYPE, Activity.source_id.in_(ids), Activity.kind == "profile_updated")
            .group_by(Activity.source_id)):
        out[cid]["unsubscribed"] = n
    return out


def sent_member_ids(campaign: Campaign) -> Select:
    """SELECT of the member ids of the campaign's emails."""
    return select(OutboxMessage.member_id).where(_messages(campaign.id), OutboxMessage.member_id.is_not(None))


def figure_members(session: Session, campaign: Campaign, figure: str, url: str | None = None) -> Select:
    """SELECT of the Member rows behind one figure of the report (by name), for a paginated list.
    Raises ValueError for an unknown figure."""
    ids: Select
    if figure in ("queued", "sent", "failed", "cancelled"):
        statuses = ("queued", "sending") if figure == "queued" else (figure,)
        ids = select(OutboxMessage.member_id).where(_messages(campaign.id), OutboxMessage.status.in_(statuses))
    elif figure == "bounced":
        ids = (select(OutboxMessage.member_id).join(Member, Member.id == OutboxMessage.member_id)
               .where(_messages(campaign.id), OutboxMessage.status == "failed", Member.email_bouncing.is_(True)))
    elif figure in ("opened", "clicked"):
        ids = _tracked(session, _OPENED if figure == "opened" else _CLICKED, campaign.id).with_only_columns(
            Activity.member_id)
        if figure == "clicked" and url:
            ids = ids.where(Activity.detail["url"].as_string() == url)
    elif figure == "unsubscribed":
        ids = select(Activity.member_id).where(Activity.source_type == SOURCE_TYPE, Activity.source_id == campaign.id,
                                               Activity.kind == "profile_updated")
    else:
        raise ValueError(f"unknown figure {figure!r}")
    return select(Member).where(Member.id.in_(ids)).order_by(Member.last_name, Member.first_name, Member.id)


def campaign_for_unsubscribe(session: Session, campaign_id: int | None) -> Campaign | None:
    """The campaign an unsubscribe link names (None: none, or deleted)."""
    return session.get(Campaign, campaign_id) if campaign_id is not None else None


_LOCAL_INPUT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}$")


def parse_local_moment(text: str | None) -> datetime:
    """A `datetime-local` input value (the association's zone) as aware UTC. Raises ValidationError."""
    from datetime import timezone

    from membership.core.time import tz

    raw = (text or "").strip()
    if not _LOCAL_INPUT.match(raw):
        raise ValidationError(_("Enter the date and time like 2026-07-01 09:30."), field="send_at")
    try:
        moment = datetime.fromisoformat(raw.replace(" ", "T"))
    except ValueError:
        raise ValidationError(_("This is not a real date and time."), field="send_at") from None
    if not 2000 <= moment.year <= 2999:
        raise ValidationError(_("Enter a date between the years 2000 and 2999."), field="send_at")
    return moment.replace(tzinfo=tz()).astimezone(timezone.utc)
