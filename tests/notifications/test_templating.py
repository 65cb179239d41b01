"""Templates: the shipped defaults, placeholders, the sandbox, staff edits and reset."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select

from membership.core.models import AuditLog
from membership.extensions import db
from membership.notifications import outbox, templating
from membership.notifications.models import EmailTemplate
from tests.conftest import NOW


@pytest.mark.parametrize("key", sorted(templating.TEMPLATES))
def test_every_shipped_template_renders_with_sample_data(app, key):
    info = templating.TEMPLATES[key]
    ctx = templating.sample_context(key, now=NOW)
    rendered, reason = templating.render_email(db.session, key, ctx, category=info.category,
                                               unsubscribe_link=ctx["unsubscribe_link"])
    assert rendered.subject and "\n" not in rendered.subject and "{{" not in rendered.subject
    assert "{{" not in rendered.body_text and "{%" not in rendered.body_text
    assert rendered.body_html and "{{" not in rendered.body_html
    assert "Test Association" in rendered.body_text
    assert reason and "{{" not in reason
    if info.category == "service":
        assert f"You received this email because {reason}" in rendered.body_text


def test_default_reminder_rules_each_have_their_own_text(app):
    subjects = set()
    for key in ("renewal_reminder_30", "renewal_reminder_7", "renewal_due_today", "grace_notice", "lapsed_notice"):
        source = templating.default_source(key)
        subjects.add(source.subject)
        assert "renewal_link" in source.body_text
    assert len(subjects) == 5


def test_reminder_placeholders_come_from_the_term(app, make_member, make_plan, make_term):
    member = make_member(first_name="Ada")
    plan = make_plan(name="Annual", fee_minor=0, grace_days=30)
    term = make_term(member, plan, starts_on=date(2025, 7, 1))  # ends 30 June 2026
    row = outbox.enqueue(db.session, template_key="renewal_reminder_7", dedupe_key="r", now=NOW, member=member,
                         context={"term": term}, source=term)
    assert "ends in 15 days, on 30 June 2026" in row.body_text
    assert "http://127.0.0.1:5000/my/renew" in row.body_text
    assert row.source_type == "membership" and row.source_id == term.id
    grace = outbox.enqueue(db.session, template_key="grace_notice", dedupe_key="g",
                           now=datetime(2026, 7, 14, 9, tzinfo=timezone.utc), member=member, context={"term": term})
    assert "until 30 July 2026" in grace.body_text


def test_dates_are_those_of_the_associations_time_zone(app, make_member, make_plan, make_term):
    """A payment at 20:00 UTC on 14 June was received on 15 June in Dhaka (UTC+6)."""
    from membership.plans.services import PaymentInput, record_payment

    member = make_member()
    payment = record_payment(db.session, PaymentInput(amount_minor=2500, method="cash",
                                                      received_at=datetime(2026, 6, 14, 20, tzinfo=timezone.utc)),
                             actor=None, now=NOW, member=member, currency="BDT")
    ctx = templating.build_context(now=NOW, member=member, extra={"payment": payment})
    assert ctx["payment_date"] == "15 June 2026"
    assert "BDT" in ctx["amount"] and "25.00" in ctx["amount"]


def test_context_refuses_orm_objects_a_template_could_call(app, make_member):
    member = make_member()
    with pytest.raises(TypeError):
        templating.build_context(now=NOW, member=member, extra={"owner": member.plan or object()})


def test_ordinary_template_features_still_work(app):
    source = templating.Source(
        "Hi {{ member.first_name|upper }}",
        "{% for line in lines %}{{ loop.index }}. {{ line|truncate(20) }}\n{% endfor %}"
        "{{ days_left % 7 }} {{ 'week' ~ ('s' if days_left > 13 else '') }} {{ lines|join(', ') }}",
        None)
    ctx = templating.sample_context("staff_digest", now=NOW)
    rendered = templating.render_source(source, ctx)
    assert rendered.subject == "Hi ADA"
    assert rendered.body_text.startswith("1. 3 new members\n2. 12 renewals due...\n3. 1 email failed\n")
    assert "2 weeks 3 new members, 12 renewals" in rendered.body_text


def test_html_is_escaped_and_text_is_not(app):
    source = templating.Source("Hi {{ recipient_name }}", "Hi {{ recipient_name }}", "<p>Hi {{ recipient_name }}</p>")
    ctx = templating.build_context(now=NOW, to_name="<b>Tom & Jerry</b>", to_address="t@example.org")
    rendered = templating.render_source(source, ctx)
    assert rendered.body_text == "Hi <b>Tom & Jerry</b>"
    assert rendered.body_html == "<p>Hi &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"


@pytest.mark.parametrize("body, expected", [
    ("{{ ''.__class__.__mro__ }}", "Not allowed in an email template"),
    ("{{ member.__class__.__init__.__globals__ }}", "Not allowed in an email template"),
    ("{{ self._TemplateReference__context }}", "Not allowed in an email template"),
    ("{{ member.update({'email': 'x'}) }}", "Not allowed in an email template"),
    ("{{ 'a' * 100000000 }}", "Not allowed in an email template"),
    ("{{ 9 ** 999999 }}", "Not allowed in an email template"),
    ("{% for i in range(100000000) %}x{% endfor %}", "Not allowed in an email template"),
    ("{{ 'x'.center(1000000000) }}", "numbers above 10,000"),
    ("{{ 'x'|center(1000000000) }}", "numbers above 10,000"),
    ("{{ '%999999999s' % 'x' }}", "printf-style formatting"),
    ("{{ '{:>999999999}'.format('x') }}", "format() is not available"),
    ("{% for a in range(9) %}{% for b in range(9) %}x{% endfor %}{% endfor %}", "a loop inside a loop"),
    ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "macros are not available"),
    ("{% include 'welcome.txt' %}", "cannot include other templates"),
    ("Hello {{ member.nickname }}", "Unknown placeholder"),
    ("Hello {{ nickname }}", "Unknown placeholder"),
    ("Line one\nHello {{ member.first_name }", "line 2"),
    ("{% if %}", "Template syntax error"),
])
def test_the_sandbox_and_mistakes_give_clear_errors(app, body, expected):
    with pytest.raises(templating.TemplateProblem) as info:
        templating.check_template("welcome", subject="Hi", body_text=body, body_html=None, now=NOW)
    assert info.value.field == "body_text"
    assert expected in str(info.value)


def test_save_checks_then_stores_and_reset_brings_back_the_default(app, admin_user):
    with pytest.raises(templating.TemplateProblem) as bad:
        templating.save_template(db.session, "welcome", subject="Hi {{ member.first_name ", body_text="x",
                                 body_html=None, actor=admin_user, now=NOW)
    assert bad.value.field == "subject"
    assert db.session.scalar(select(EmailTemplate)) is None

    templating.save_template(db.session, "welcome", subject="Hello {{ member.first_name }}!",
                             body_text="Glad you joined, {{ member.first_name }}.", body_html="",
                             actor=admin_user, now=NOW)
    db.session.commit()
    current = templating.current_source(db.session, "welcome")
    assert current.is_custom and current.body_html is None
    row = outbox.enqueue(db.session, template_key="welcome", dedupe_key="w", now=NOW, to_address="ada@example.org",
                         to_name="Ada Lovelace")
    assert row.subject == "Hello Ada!" and row.body_text.startswith("Glad you joined, Ada.")
    assert row.body_html is None
    assert "You received this email because you have just joined" in row.body_text  # reason kept

    assert templating.reset_template(db.session, "welcome", actor=admin_user, now=NOW) is True
    db.session.commit()
    assert not templating.current_source(db.session, "welcome").is_custom
    assert templating.reset_template(db.session, "welcome", actor=admin_user, now=NOW) is False
    actions = db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions[-2:] == ["email_template.update", "email_template.reset"]


def test_a_custom_template_that_fails_at_send_time_falls_back_to_the_default(app):
    db.session.add(EmailTemplate(key="welcome", subject="Hi {{ missing_value }}", body_text="x", updated_at=NOW))
    db.session.commit()
    row = outbox.enqueue(db.session, template_key="welcome", dedupe_key="w", now=NOW, to_address="ada@example.org",
                         to_name="Ada Lovelace")
    assert row.subject == "Welcome to Test Association, Ada"


def test_subject_must_be_one_line_and_text_is_required(app):
    with pytest.raises(templating.TemplateProblem) as info:
        templating.check_template("welcome", subject="a\nb", body_text="x", body_html=None, now=NOW)
    assert info.value.field == "subject"
    with pytest.raises(templating.TemplateProblem) as info:
        templating.check_template("welcome", subject="a", body_text="  ", body_html=None, now=NOW)
    assert info.value.field == "body_text"
    with pytest.raises(templating.TemplateProblem) as info:
        templating.check_template("welcome", subject="a", body_text="x\x00", body_html=None, now=NOW)
    assert "NUL" in str(info.value)


def test_preview_against_a_real_member_uses_their_data(app, make_member, make_plan, make_term):
    member = make_member(first_name="রবীন্দ্রনাথ", last_name="ঠাকুর")
    plan = make_plan(name="Life", fee_minor=1000)
    make_term(member, plan, starts_on=date(2026, 1, 1), today=date(2026, 1, 1))
    ctx = templating.sample_context("payment_receipt", now=NOW, member=member)
    rendered = templating.render_source(templating.default_source("payment_receipt"), ctx)
    assert "রবীন্দ্রনাথ" in rendered.body_text and "Life" in rendered.body_text
    assert "R-2026-" in rendered.subject
