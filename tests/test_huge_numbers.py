"""Ids and page numbers too large for the database are "not found", never a 500 (found by fuzzing)."""
from __future__ import annotations

import pytest

from tests.conftest import login

HUGE = "99999999999999999999"


def test_every_route_with_an_int_id_answers_404_for_a_huge_id(app, client, admin_user, make_user):
    member_user = make_user("member")
    routes = [rule for rule in app.url_map.iter_rules()
              if "GET" in rule.methods and any(c.__class__.__name__ == "DatabaseIntConverter"
                                               for c in rule._converters.values())]
    assert len(routes) > 20
    for user in (admin_user, member_user):
        login(client, user)
        for rule in routes:
            url = _build(rule)
            response = client.get(url)
            assert response.status_code in (302, 403, 404), (url, response.status_code)
        client.post("/logout")


def _build(rule) -> str:
    """The rule's URL with a huge number for every <int:...> and "x" for any other part."""
    url = rule.rule
    for name, converter in rule._converters.items():
        value = HUGE if converter.__class__.__name__ == "DatabaseIntConverter" else "x"
        for form in (f"<int:{name}>", f"<{name}>", f"<path:{name}>", f"<string:{name}>"):
            url = url.replace(form, value)
    return url


@pytest.mark.parametrize("path", ["/staff/members", "/staff/organizations", "/staff/admin/plans",
                                  "/staff/admin/reminders", "/staff/admin/users", "/staff/payments"])
def test_a_huge_page_number_is_not_found(client, admin_user, path):
    login(client, admin_user)
    assert client.get(f"{path}?page={HUGE}").status_code == 404
    assert client.get(f"{path}?page=2").status_code in (200, 404)
