"""Campaigns: who gets one and who is left out (opt-in rules), composing with bad input, sending
exactly once through the outbox at the configured rate, one-click unsubscribe, and the report."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from membership.campaigns import services
from membership.campaigns.models import Campaign, CampaignVersion
from membership.core.errors import Conflict, ValidationError
from membership.core.models import Activity, AuditLog
from membership.engagement import tracking
from membership.extensions import db
from membership.notifications import outbox
from membership.notifications.models import OutboxMessage
from tests.campaigns.conftest import BN, EN
from tests.conftest import NOW


def campaign_messages(campaign):
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.source_type == "campaign",
                                                               OutboxMessage.source_id == campaign.id)
                                   .order_by(OutboxMessage.member_id)))


def send(campaign, *, now=NOW, **kw):
    services.schedule(db.session, campaign, send_at=now, actor=None, now=now)
    db.session.commit()
    counts = services.queue_due(db.session, now=now, **kw)
    db.session.commit()
    return counts


# ---------------------------------------------------------------- who gets it


def test_marketing_goes_only_to_members_who_opted_in_and_says_why_others_are_left_out(audience, make_campaign):
    campaign = make_campaign(kind="marketing")
    counts = services.audience_counts(db.session, campaign)
    assert counts == {"recipient": 3, "erased": 1, "no_email": 1, "bouncing": 1, "unsubscribed": 1, "no_opt_in": 1}
    recipients = set(db.session.scalars(services.campaignable_members(db.session, filters={}, kind="marketing")))
    assert recipients == {audience["opted_in"].id, audience["opted_in_bn"].id, audience["lapsed"].id}
    # each left-out list opens the right member
    for reason, who in (("unsubscribed", "unsubscribed"), ("no_opt_in", "no_opt_in"), ("bouncing", "bouncing"),
                        ("no_email", "no_email"), ("erased", "erased")):
        ids = [m.id for m in db.session.scalars(services.audience_members(db.session, campaign, reason))]
        assert ids == [audience[who].id], reason


def test_service_announcement_goes_to_every_current_member_whatever_their_marketing_choice(audience, make_campaign):
    campaign = make_campaign(kind="service", name="AGM notice")
    counts = services.audience_counts(db.session, campaign)
    assert counts == {"recipient": 4, "erased": 1, "not_current": 1, "no_email": 1, "bouncing": 1}
    send(campaign)
    to = {m.member_id for m in campaign_messages(campaign)}
    assert to == {audience[k].id for k in ("opted_in", "opted_in_bn", "no_opt_in", "unsubscribed")}
    message = campaign_messages(campaign)[0]
    assert message.category == "service"
    assert "List-Unsubscribe" not in (message.headers or {})
    assert "service announcements go to every member" in message.body_text


def test_a_segment_and_filters_choose_the_recipients(app, make_member, make_campaign, staff_user):
    from membership.engagement.queries import save_segment
    board = [make_member(first_name=f"Board{i}", marketing_opt_in=True) for i in range(2)]
    make_member(first_name="Other", marketing_opt_in=True)
    for m in board:
        db.session.add(__import__("membership.members.models", fromlist=["MemberTag"]).MemberTag(
            member_id=m.id, tag="board"))
    segment = save_segment(db.session, "Board", {"tag": ["board"]}, actor=staff_user, now=NOW)
    db.session.commit()
    campaign = make_campaign(filters={"segment": str(segment.id)})
    assert campaign.filters == {"segment": segment.id}
    assert services.audience_counts(db.session, campaign)["recipient"] == 2
    by_status = make_campaign(filters={"status": ["lapsed"]}, name="Win back")
    assert services.audience_counts(db.session, by_status)["recipient"] == 0


# ---------------------------------------------------------------- compose: bad input


@pytest.mark.parametrize("kwargs, field", [
    ({"name": "  "}, "name"),
    ({"kind": "spam"}, "kind"),
    ({"filters": {"segment": "999"}}, "segment"),
    ({"filters": {"plan_id": "abc"}}, "plan_id"),
    ({"versions": {"en": services.VersionText("", "", "")}}, "en_subject"),
    ({"versions": {"en": services.VersionText("Hi", "Hello {{ nope }}", "")}}, "en_body_text"),
    ({"versions": {"en": EN, "bn": services.VersionText("Hi {{ ''.__class__ }}", "x", "")}}, "bn_subject"),
    ({"versions": {"en": services.VersionText("Hi", "ok", "<p>{% for x in y %}</p>")}}, "en_body_html"),
    ({"versions": {"en": EN, "bn": services.VersionText("বিষয়", "", "")}}, "bn_body_text"),
])
def test_bad_input_is_refused_with_the_field_and_nothing_is_written(app, staff_user, kwargs, field):
    args = {"name": "News", "kind": "marketing", "filters": {}, "versions": {"en": EN}, **kwargs}
    with pytest.raises(ValidationError) as caught:
        services.save_campaign(db.session, None, actor=staff_user, now=NOW, **args)
    db.session.rollback()
    assert caught.value.field == field
    assert caught.value.message
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 0
    assert db.session.scalar(select(func.count()).select_from(CampaignVersion)) == 0


def test_only_a_draft_can_be_changed_and_schedule_refuses_bad_times(audience, make_campaign, staff_user):
    campaign = make_campaign()
    with pytest.raises(ValidationError) as past:
        services.schedule(db.session, campaign, send_at=NOW - timedelta(hours=1), actor=staff_user, now=NOW)
    assert past.value.field == "send_at"
    with pytest.raises(ValidationError):
        services.schedule(db.session, campaign, send_at=NOW + timedelta(days=400), actor=staff_user, now=NOW)
    with pytest.raises(ValidationError):
        services.parse_local_moment("tomorrow")
    with pytest.raises(ValidationError):
        services.parse_local_moment("2026-02-30T10:00")
    assert services.parse_local_moment("2026-07-01T15:00").isoformat() == "2026-07-01T09:00:00+00:00"  # Dhaka +6
    services.schedule(db.session, campaign, send_at=NOW + timedelta(days=1), actor=staff_user, now=NOW)
    db.session.commit()
    with pytest.raises(Conflict):
        services.save_campaign(db.session, campaign, name="x", kind="marketing", filters={}, versions={"en": EN},
                               actor=staff_user, now=NOW)
    with pytest.raises(Conflict):
        services.schedule(db.session, campaign, send_at=NOW, actor=staff_user, now=NOW)
    db.session.rollback()
    # not due yet: the job leaves it alone
    assert services.queue_due(db.session, now=NOW)["campaigns"] == 0
    services.unschedule(db.session, campaign, actor=staff_user, now=NOW)
    db.session.commit()
    assert campaign.status == "draft" and campaign.send_at is None


def test_a_campaign_nobody_would_get_cannot_be_sent(app, make_campaign, make_member):
    make_member(marketing_opt_in=False)
    campaign = make_campaign()
    with pytest.raises(ValidationError):
        services.schedule(db.session, campaign, send_at=NOW, actor=None, now=NOW)


# ---------------------------------------------------------------- sending


def test_sending_queues_one_email_per_recipient_once_in_their_language_at_the_rate(app, audience, make_campaign):
    app.config["CAMPAIGN_RATE_PER_MINUTE"] = 2
    campaign = make_campaign(bn=BN)
    counts = send(campaign, batch_size=2)
    assert counts == {"campaigns": 1, "queued": 3, "skipped": 0, "figures_refreshed": 1}
    db.session.expire_all()
    assert campaign.status == "sent" and campaign.recipient_count == 3
    messages = campaign_messages(campaign)
    assert [m.dedupe_key for m in messages] == [services.dedupe_key(campaign.id, m.member_id) for m in messages]
    by_member = {m.member_id: m for m in messages}
    assert by_member[audience["opted_in_bn"].id].subject == "খবর Bangla"
    assert by_member[audience["opted_in"].id].subject == "News for Optin"
    # two a minute: the third waits one minute
    assert sorted(m.next_attempt_at for m in messages) == [NOW, NOW, NOW + timedelta(minutes=1)]
    # marketing: RFC 8058 headers, the link names the campaign
    message = by_member[audience["opted_in"].id]
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = message.headers["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]
    from membership.notifications.unsubscribe import campaign_from_token, member_from_token
    assert campaign_from_token(token) == campaign.id
    assert member_from_token(db.session, token).id == audience["opted_in"].id
    # a second run, or the job again, queues nothing
    assert services.queue_campaign(db.session, campaign, now=NOW) == {"queued": 0, "skipped": 0}
    assert services.queue_due(db.session, now=NOW + timedelta(minutes=5))["queued"] == 0
    assert len(campaign_messages(campaign)) == 3
    # the dispatcher sends only what is due: two now, the third a minute later
    assert outbox.deliver_pending(db.session, now=NOW)["sent"] == 2
    assert outbox.deliver_pending(db.session, now=NOW + timedelta(minutes=1))["sent"] == 1


def test_a_member_without_a_version_in_their_language_gets_the_default_one(audience, make_campaign):
    campaign = make_campaign()
    send(campaign)
    bn = next(m for m in campaign_messages(campaign) if m.member_id == audience["opted_in_bn"].id)
    assert bn.subject == "News for Bangla"


def test_a_run_stopped_half_way_is_finished_by_the_next_without_duplicates(app, make_member, make_campaign):
    members = [make_member(marketing_opt_in=True) for _ in range(7)]
    db.session.commit()
    campaign = make_campaign()
    services.schedule(db.session, campaign, send_at=NOW, actor=None, now=NOW)
    db.session.commit()
    seen = []

    def crash(n):
        seen.append(n)
        if len(seen) == 5:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        services.queue_due(db.session, now=NOW, batch_size=3, on_queued=crash)
    db.session.rollback()  # the batch in progress is lost, the first one was committed
    assert len(campaign_messages(campaign)) == 3
    assert db.session.get(Campaign, campaign.id).status == "sending"
    counts = services.queue_due(db.session, now=NOW + timedelta(minutes=1), batch_size=3)
    db.session.commit()
    assert counts["queued"] == 4
    assert sorted(m.member_id for m in campaign_messages(campaign)) == sorted(m.id for m in members)


def test_the_scheduler_job_sends_due_campaigns_once_across_restarts(app, make_member, make_campaign):
    from membership import scheduler
    [make_member(marketing_opt_in=True) for _ in range(3)]
    db.session.commit()
    assert "send-campaigns" in {j.name for j in scheduler.jobs()}
    campaign = make_campaign()
    services.schedule(db.session, campaign, send_at=NOW + timedelta(minutes=10), actor=None, now=NOW)
    db.session.commit()
    assert scheduler.run_job("send-campaigns", now=NOW).counts.get("queued", 0) == 0
    first = scheduler.run_job("send-campaigns", now=NOW + timedelta(minutes=10))
    assert first.status == "ok" and first.counts["queued"] == 3
    again = scheduler.run_job("send-campaigns", now=NOW + timedelta(minutes=11))
    assert again.status == "ok" and not again.counts.get("queued")
    assert len(campaign_messages(campaign)) == 3


def test_a_test_email_goes_to_the_staff_member_only_and_counts_nowhere(audience, make_campaign, staff_user):
    campaign = make_campaign()
    row = services.send_test(db.session, campaign, user=staff_user, member=audience["opted_in"], now=NOW)
    db.session.commit()
    assert row.to_address == staff_user.email and row.member_id is None and row.category == "staff"
    assert row.subject == "[Test] News for Optin"
    assert services.report(db.session, campaign)["figures"]["total"] == 0
    assert db.session.scalar(select(AuditLog.action).where(AuditLog.action == "campaign.test")) == "campaign.test"


# ---------------------------------------------------------------- unsubscribe and report


@pytest.fixture
def csrf_client(app):
    app.config["WTF_CSRF_ENABLED"] = True
    return app.test_client()


def test_one_click_unsubscribe_without_csrf_counts_in_the_campaign(audience, make_campaign, csrf_client):
    campaign = make_campaign()
    send(campaign)
    member = audience["opted_in"]
    message = next(m for m in campaign_messages(campaign) if m.member_id == member.id)
    url = message.headers["List-Unsubscribe"].strip("<>").replace("http://127.0.0.1:5000", "")
    # a plain POST without the one-click body needs the CSRF token
    assert csrf_client.post(url).status_code == 400
    response = csrf_client.post(url, data="List-Unsubscribe=One-Click",
                                content_type="application/x-www-form-urlencoded")
    assert response.status_code == 204
    db.session.expire_all()
    assert member.marketing_opt_in is False
    # the member's other queued campaign email was cancelled with it
    assert db.session.get(OutboxMessage, message.id).status == "cancelled"
    figures = services.report(db.session, campaign)["figures"]
    assert figures["unsubscribed"] == 1 and figures["cancelled"] == 1
    assert [m.id for m in db.session.scalars(services.figure_members(db.session, campaign, "unsubscribed"))] == [member.id]
    # a second one-click changes nothing
    assert csrf_client.post(url, data="List-Unsubscribe=One-Click",
                            content_type="application/x-www-form-urlencoded").status_code == 204
    assert services.report(db.session, campaign)["figures"]["unsubscribed"] == 1
    # a forged token is refused
    assert csrf_client.post("/mail/unsubscribe/forged", data="List-Unsubscribe=One-Click",
                            content_type="application/x-www-form-urlencoded").status_code == 404


def test_report_counts_each_figure_and_opens_its_members(app, make_member, make_campaign):
    from membership.notifications.backends import PermanentError
    from tests.notifications.conftest import ScriptedBackend

    people = [make_member(first_name=f"R{i}", marketing_opt_in=True) for i in range(5)]
    db.session.commit()
    campaign = make_campaign()
    send(campaign)
    refused = PermanentError("550 no such user", recipient_refused=True)
    backend = ScriptedBackend({people[4].email: refused})
    counts = outbox.deliver_pending(db.session, now=NOW, backend=backend)
    assert counts["sent"] == 4 and counts["bounced"] == 1
    by_member = {m.member_id: m for m in campaign_messages(campaign)}
    # the sent HTML is tracked (pixel and wrapped links)
    assert "/mail/o/" in backend.delivered[0].message.as_string()
    events = "http://127.0.0.1:5000/events/"
    portal = "http://127.0.0.1:5000/my/"
    later = NOW + timedelta(hours=1)
    tracking.record_open(db.session, by_member[people[0].id], now=later)
    tracking.record_open(db.session, by_member[people[0].id], now=later)  # once per message
    tracking.record_open(db.session, by_member[people[1].id], now=later)
    tracking.record_click(db.session, by_member[people[2].id], events, now=later)  # a click is an open too
    tracking.record_click(db.session, by_member[people[2].id], portal, now=later)
    tracking.record_click(db.session, by_member[people[1].id], events, now=later)
    db.session.commit()
    result = services.report(db.session, campaign)
    assert result["figures"] == {"queued": 0, "sent": 4, "failed": 1, "bounced": 1, "cancelled": 0, "opened": 3,
                                 "clicked": 2, "unsubscribed": 0, "total": 5}
    assert result["links"] == [(events, 2), (portal, 1)]

    def members(figure, url=None):
        return {m.id for m in db.session.scalars(services.figure_members(db.session, campaign, figure, url))}

    assert members("opened") == {people[0].id, people[1].id, people[2].id}
    assert members("clicked") == {people[1].id, people[2].id}
    assert members("clicked", portal) == {people[2].id}
    assert members("bounced") == members("failed") == {people[4].id}
    assert members("sent") == {p.id for p in people[:4]}
    # the opens are the members' activities (engagement and churn read them)
    kinds = db.session.scalars(select(Activity.kind).where(Activity.member_id == people[2].id)).all()
    assert kinds.count("email_opened") == 1 and kinds.count("email_clicked") == 2
    listed = {"total": 5, "sent": 4, "failed": 1, "opened": 3, "clicked": 2, "unsubscribed": 0}
    assert services.count_list_figures(db.session, [campaign.id])[campaign.id] == listed
    # the list shows what the job stored (when it queued the campaign: nothing sent yet) ...
    assert campaign.figures_at == NOW and services.list_figures(db.session, [campaign])[campaign.id]["sent"] == 0
    # ... and refreshes it every ten minutes
    assert services.refresh_figures(db.session, now=NOW + timedelta(minutes=5)) == 0
    assert services.refresh_figures(db.session, now=NOW + timedelta(minutes=11)) == 1
    db.session.commit()
    db.session.expire_all()
    assert services.list_figures(db.session, [campaign])[campaign.id] == listed
    tracking.record_open(db.session, by_member[people[3].id], now=later)
    db.session.commit()
    assert services.list_figures(db.session, [campaign])[campaign.id]["opened"] == 3  # stored, until refreshed
    assert services.report(db.session, campaign)["figures"]["opened"] == 4  # the report counts live
    with pytest.raises(ValueError):
        services.figure_members(db.session, campaign, "nonsense")


def test_a_scheduled_campaign_whose_segment_was_deleted_goes_back_to_draft(app, make_member, make_campaign, staff_user):
    from membership.engagement.queries import delete_segment, save_segment
    make_member(marketing_opt_in=True)
    segment = save_segment(db.session, "Everyone", {}, actor=staff_user, now=NOW)
    db.session.commit()
    campaign = make_campaign(filters={"segment": segment.id})
    services.schedule(db.session, campaign, send_at=NOW, actor=staff_user, now=NOW)
    delete_segment(db.session, segment, actor=staff_user, now=NOW)
    db.session.commit()
    counts = services.queue_due(db.session, now=NOW)
    db.session.commit()
    assert counts["stopped"] == 1 and counts["queued"] == 0
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "draft"
    summary = db.session.scalar(select(AuditLog.summary).where(AuditLog.action == "campaign.stopped"))
    assert "does not exist" in summary
    assert services.queue_due(db.session, now=NOW + timedelta(minutes=1))["campaigns"] == 0
