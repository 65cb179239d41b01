"""The Scheduler staff page and the reminder rules admin pages."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, select

from membership.core.models import AuditLog
from membership.core.time import local_today
from membership.extensions import db
from membership.notifications.models import JobRun, ReminderRule
from membership.scheduler import run_job
from tests.conftest import NOW, login

UTC = timezone.utc


def rules() -> list[ReminderRule]:
    db.session.expire_all()
    return list(db.session.scalars(select(ReminderRule).order_by(ReminderRule.id)))


def form(**kw):
    data = {"name": "10 days before", "offset_days": "-10", "plan_id": "", "template_key": "renewal_reminder",
            "effective_from": "2026-06-01", "is_active": "y"}
    data.update(kw)
    return {k: v for k, v in data.items() if v is not None}


# ---------------------------------------------------------------- rules admin


def test_rules_list_says_what_each_rule_does(admin_client, make_rule, make_plan):
    gold = make_plan(name="Gold")
    make_rule(-30, name="A month before")
    make_rule(14, name="Gold grace", plan=gold, active=False)
    db.session.commit()
    html = admin_client.get("/staff/admin/reminders").get_data(as_text=True)
    assert "A month before" in html and "30 days before the end" in html and "All plans" in html
    assert "Gold grace" in html and "14 days after the end" in html and "Gold" in html and "Inactive" in html
    assert 'name="csrf_token"' in html  # the deactivate / reactivate buttons are forms with the token
    inactive = admin_client.get("/staff/admin/reminders?show=inactive").get_data(as_text=True)
    assert "Gold grace" in inactive and "A month before" not in inactive


def test_staff_cannot_manage_rules(staff_client):
    assert staff_client.get("/staff/admin/reminders").status_code == 403
    assert staff_client.post("/staff/admin/reminders/new", data=form()).status_code == 403
    assert rules() == []


def test_create_a_rule(admin_client, make_plan):
    plan = make_plan(name="Student")
    db.session.commit()
    page = admin_client.get("/staff/admin/reminders/new").get_data(as_text=True)
    assert "Renewal reminder (any day) (renewal_reminder)" in page and "Student" in page
    response = admin_client.post("/staff/admin/reminders/new", data=form(plan_id=str(plan.id)),
                                 follow_redirects=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Reminder rule &#39;10 days before&#39; added: 10 days before the end" in html
    [rule] = rules()
    assert (rule.offset_days, rule.plan_id, rule.template_key, rule.is_active, rule.effective_from) == \
        (-10, plan.id, "renewal_reminder", True, date(2026, 6, 1))
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "reminder_rule.create"))
    assert audit is not None and audit.entity_id == rule.id


def test_bad_rules_are_refused_beside_the_field(admin_client):
    cases = [
        (form(offset_days="400"), "between -365 and 365"),
        (form(offset_days="-366"), "between -365 and 365"),
        (form(offset_days="soon"), "whole number of days"),
        (form(offset_days=""), "Give the number of days"),
        (form(name="  "), "Give the rule a name"),
        (form(template_key="nope"), "There is no email template"),
        (form(template_key=""), "Choose the email template"),
        (form(plan_id="999999"), "Choose a plan from the list"),
        (form(plan_id="x"), "Choose a plan from the list"),
        (form(effective_from="31/02/2026"), "Give a date like 2026-07-01"),
        (form(effective_from=""), "Give the date from which the rule applies"),
    ]
    for data, message in cases:
        response = admin_client.post("/staff/admin/reminders/new", data=data)
        html = response.get_data(as_text=True)
        assert response.status_code == 422, (data, html[:300])
        assert message in html, (data, message)
        assert 'class="invalid-feedback"' in html  # beside its field
        assert 'value="10 days before"' in html or data.get("name", "").strip() == ""  # what was typed stays
    assert rules() == []


def test_edit_a_rule_moving_its_day_does_not_back_fill(admin_client, make_rule):
    rule = make_rule(-7, name="Week before", effective_from=date(2020, 1, 1))
    db.session.commit()
    page = admin_client.get(f"/staff/admin/reminders/{rule.id}/edit").get_data(as_text=True)
    assert 'value="Week before"' in page and 'value="-7"' in page
    response = admin_client.post(f"/staff/admin/reminders/{rule.id}/edit",
                                 data=form(name="Ten days before", offset_days="-10", template_key="renewal_reminder_7",
                                           effective_from="2020-01-01"), follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "saved" in html and "does not reach back" in html
    [saved] = rules()
    assert (saved.name, saved.offset_days, saved.effective_from) == ("Ten days before", -10, local_today())

    # renaming only keeps the effective date
    admin_client.post(f"/staff/admin/reminders/{rule.id}/edit",
                      data=form(name="Ten days ahead", offset_days="-10", template_key="renewal_reminder_7",
                                effective_from="2026-01-01"))
    [saved] = rules()
    assert (saved.name, saved.effective_from) == ("Ten days ahead", date(2026, 1, 1))

    bad = admin_client.post(f"/staff/admin/reminders/{rule.id}/edit", data=form(offset_days="1000"))
    assert bad.status_code == 422 and rules()[0].offset_days == -10


def test_deactivate_and_reactivate(admin_client, make_rule):
    rule = make_rule(-7, effective_from=date(2020, 1, 1))
    db.session.commit()
    assert admin_client.get(f"/staff/admin/reminders/{rule.id}/deactivate").status_code == 405
    html = admin_client.post(f"/staff/admin/reminders/{rule.id}/deactivate", follow_redirects=True).get_data(as_text=True)
    assert "deactivated" in html and rules()[0].is_active is False
    html = admin_client.post(f"/staff/admin/reminders/{rule.id}/activate", follow_redirects=True).get_data(as_text=True)
    assert "active again" in html
    assert rules()[0].is_active is True and rules()[0].effective_from == local_today()
    assert admin_client.post("/staff/admin/reminders/999999/activate").status_code == 404


# ---------------------------------------------------------------- scheduler page


def test_scheduler_page_shows_jobs_runs_and_errors(staff_client, make_rule):
    run_job("status-transitions", now=datetime(2026, 6, 1, 2, 0, tzinfo=UTC))
    db.session.add(JobRun(job_name="renewal-reminders", holder="host:1:ab", as_of=NOW, started_at=NOW,
                          finished_at=NOW + timedelta(seconds=3), status="ok", counts={"queued": 12, "already_sent": 0},
                          run_for=date(2026, 6, 15)))
    db.session.add(JobRun(job_name="deliver-email", holder="host:1:ab", as_of=NOW, started_at=NOW,
                          finished_at=NOW, status="error", error="ConnectionRefusedError: smtp down"))
    db.session.commit()
    response = staff_client.get("/staff/scheduler")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for name in ("status-transitions", "renewal-reminders", "deliver-email", "prune-job-runs"):
        assert name in html
    assert "daily at 08:00" in html and "every minute" in html
    assert "queued 12" in html and "already sent" not in html.split("Run history")[0]  # zeros left out
    assert "ConnectionRefusedError: smtp down" in html and "failing since" in html
    assert "done for 01 Jun 2026" in html  # the status job's local day

    only_errors = staff_client.get("/staff/scheduler?status=error").get_data(as_text=True).split("Run history")[1]
    assert "smtp down" in only_errors and "queued 12" not in only_errors
    only_reminders = staff_client.get("/staff/scheduler?job=renewal-reminders").get_data(as_text=True)
    assert "queued 12" in only_reminders.split("Run history")[1]
    assert "smtp down" not in only_reminders.split("Run history")[1]


def test_scheduler_history_paginates(staff_client):
    for i in range(60):
        at = NOW + timedelta(minutes=i)
        db.session.add(JobRun(job_name="renewal-reminders", holder="h", as_of=at, started_at=at, finished_at=at,
                              status="ok", counts={"queued": i + 1}))
    db.session.commit()
    def shown(html):
        return {int(n) for n in re.findall(r"queued (\d+)\b", html.split("Run history")[1])}

    first = staff_client.get("/staff/scheduler").get_data(as_text=True)
    assert "60 runs" in first and shown(first) == set(range(11, 61))  # newest first, 50 a page
    second = staff_client.get("/staff/scheduler?page=2").get_data(as_text=True)
    assert shown(second) == set(range(1, 11))


def test_scheduler_page_needs_staff(client, make_user):
    assert client.get("/staff/scheduler").status_code in (302, 401)
    member = make_user("member", email="member@example.org")
    login(client, member)
    assert client.get("/staff/scheduler").status_code == 403


def test_no_runs_yet_says_how_to_start(staff_client):
    html = staff_client.get("/staff/scheduler").get_data(as_text=True)
    assert "flask --app wsgi scheduler run" in html and "never" in html
    assert db.session.scalar(select(func.count()).select_from(JobRun)) == 0
