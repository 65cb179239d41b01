from datetime import date

from tests.conftest import NOW, login


def test_login_and_home(client, staff_user):
    assert login(client, staff_user).status_code == 302
    assert client.get("/staff/").status_code == 200


def test_join_and_renew(app, make_member, make_plan, make_term):
    from membership.extensions import db
    from membership.plans.services import renew

    member = make_member()
    plan = make_plan(fee_minor=0)
    term = make_term(member, plan, starts_on=date(2025, 7, 1), today=date(2025, 7, 1))
    assert term.ends_on == date(2026, 6, 30)
    new = renew(db.session, term, today=date(2026, 6, 15), now=NOW, actor=None)
    assert new.starts_on == date(2026, 7, 1)
    assert member.status == "active"


def test_search_bengali_and_phone(app, make_member):
    from werkzeug.datastructures import MultiDict

    from membership.extensions import db
    from membership.members.queries import MemberFilter, member_query

    a = make_member(first_name="রবীন্দ্রনাথ", last_name="ঠাকুর", phone="01712345678")
    make_member(first_name="Ängel", last_name="Smith")

    def find(q):
        return db.session.scalars(member_query(MemberFilter.from_args(MultiDict({"q": q})))).all()

    assert find("ঠাকু") == [a]
    assert find("017123") == [a]
    assert find("+880 1712") == [a]
    assert [m.first_name for m in find("ängel")] == ["Ängel"]
    assert [m.first_name for m in find("ÄNG")] == ["Ängel"]
