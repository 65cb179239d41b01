"""Status transitions on time (issue 3, item 10): only `scheduler run-job status-transitions --now`
calls move a term from active to grace to lapsed, on the right local day, and staff see it."""
from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select

from membership.core.models import Activity
from membership.extensions import db
from membership.members.models import Member


def run_transitions(runner, moment: str) -> str:
    result = runner.invoke(args=["scheduler", "run-job", "status-transitions", "--now", moment])
    assert result.exit_code == 0, result.output
    return result.output


def home_count(client, status: str) -> int:
    html = client.get("/staff/").get_data(as_text=True)
    match = re.search(rf'data-status="{status}">([\d,]+)<', html)
    assert match, f"no {status} figure on the home page"
    return int(match.group(1).replace(",", ""))


def test_a_term_goes_active_grace_lapsed_on_the_right_local_days(app, runner, staff_client, make_member,
                                                                 make_plan, make_term):
    plan = make_plan(fee_minor=0, grace_days=30)
    member = make_member(first_name="Nasrin", last_name="Akter")
    term = make_term(member, plan, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    db.session.commit()
    assert (term.ends_on, member.status) == (date(2026, 6, 30), "active")
    member_id, term_id = member.id, term.id

    def state():
        db.session.expire_all()
        m = db.session.get(Member, member_id)
        return m.status, m.expires_on

    # Dhaka is UTC+6: 23:59 on 30 June there is still the last day of the term
    out = run_transitions(runner, "2026-06-30T23:59")
    assert "for 2026-06-30" in out and state() == ("active", date(2026, 6, 30))
    assert home_count(staff_client, "active") == 1

    # 00:05 on 1 July in Dhaka is 18:05 UTC on 30 June: the local day decides
    out = run_transitions(runner, "2026-06-30T18:05:00+00:00")
    assert "for 2026-07-01" in out and re.search(r"holders changed +1", out)
    assert state()[0] == "grace"
    assert home_count(staff_client, "grace") == 1 and home_count(staff_client, "active") == 0
    assert "Grace period" in staff_client.get(f"/staff/members/{member_id}").get_data(as_text=True)

    # the last day of grace (30 days after 30 June) is still grace; a second run that day does nothing
    run_transitions(runner, "2026-07-30T00:05")
    assert state()[0] == "grace"
    assert "already ran for 2026-07-30" in run_transitions(runner, "2026-07-30T23:00")

    run_transitions(runner, "2026-07-31T00:05")
    assert state()[0] == "lapsed"
    assert home_count(staff_client, "lapsed") == 1 and home_count(staff_client, "grace") == 0
    assert "Lapsed" in staff_client.get(f"/staff/members/{member_id}").get_data(as_text=True)

    changes = db.session.scalars(select(Activity).where(Activity.member_id == member_id,
                                                        Activity.kind.in_(("status_changed", "lapsed")))
                                 .order_by(Activity.id)).all()
    assert [(a.kind, (a.detail or {}).get("from"), (a.detail or {}).get("to")) for a in changes] == [
        ("status_changed", "none", "active"),  # the join
        ("status_changed", "active", "grace"), ("status_changed", "grace", "lapsed"), ("lapsed", None, None)]
    assert changes[-1].detail == {"term": term_id}
