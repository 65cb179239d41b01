"""The Bengali of the staff and admin portal (membership/translations/parts/staff.po).

The catalogue part is checked against a fresh extraction of the files it covers: every string
marked there has a Bengali translation that keeps its placeholders and its HTML tags (Jinja's
gettext marks a translation safe, so a tag that is not in the English must not appear). Then the
part is compiled into a temporary directory and the staff pages are rendered in Bengali.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from tests.conftest import login
from tests.test_security import build_url, routes, world  # noqa: F401 - world is a fixture

ROOT = Path(__file__).resolve().parents[2]
# The shipped Bengali catalogue: staff.po and the other branches' parts merged by `flask i18n update`
# (strings of the staff pages also come from the campaign, survey, API and import parts).
PO = ROOT / "membership" / "translations" / "bn" / "LC_MESSAGES" / "messages.po"
PART = ROOT / "membership" / "translations" / "parts" / "staff.po"
METHOD_MAP = [
    ("membership/staff/**.py", "python"),
    ("membership/admin/**.py", "python"),
    ("templates/staff/**.html", "jinja2"),
    ("templates/admin/**.html", "jinja2"),
]
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "lazy_ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"%\([A-Za-z_][A-Za-z0-9_]*\)s|%%")
TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def extracted() -> dict:
    """(msgid, context) -> where it was found, for every marked string (msgid is a tuple for plural
    forms; context is None but for pgettext)."""
    found: dict = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(ROOT), METHOD_MAP, keywords=KEYWORDS, options_map={}):
        found.setdefault((message, context), f"{filename}:{lineno}")
    return found


def catalogue():
    with PO.open("rb") as f:
        return read_po(f, locale="bn")


def placeholders(text: str) -> Counter:
    return Counter(PLACEHOLDER.findall(text))


def stray_percent(text: str) -> bool:
    """A % that is neither a named placeholder nor %%: Jinja formats every translation, so it fails."""
    return "%" in PLACEHOLDER.sub("", text)


# ---------------------------------------------------------------- the catalogue part


def test_the_part_is_a_bengali_catalogue():
    with PART.open("rb") as f:
        cat = read_po(f, locale="bn")
    assert str(cat.locale) == "bn"
    assert cat.num_plurals == 2 and cat.plural_expr == "(n != 1)"
    assert cat.charset == "utf-8" and not cat.fuzzy
    header = PART.read_text(encoding="utf-8")
    assert "charset=utf-8" in header and "Language: bn" in header and "Plural-Forms: nplurals=2; plural=(n != 1);" in header


def test_the_extraction_finds_the_portal_strings():
    # Guards the check below: an extraction that found nothing would pass it.
    found = extracted()
    assert len(found) > 1000
    for msgid in ("Members", "Record payment", "Key figures", "Reminder rules"):
        assert (msgid, None) in found, msgid
    assert (("%(num)s member", "%(num)s members"), None) in found
    assert ("From", "payer") in found


def test_every_marked_string_has_a_bengali_translation():
    cat = catalogue()
    missing, fuzzy = [], []
    for (msgid, context), where in extracted().items():
        message = cat.get(msgid, context=context)
        strings = () if message is None else (message.string if isinstance(message.string, tuple)
                                              else (message.string,))
        if message is None or len(strings) != (2 if isinstance(msgid, tuple) else 1) \
                or not all(s and s.strip() for s in strings):
            missing.append((where, msgid))
        elif message.fuzzy:
            fuzzy.append((where, msgid))
    assert missing == [], f"{len(missing)} strings without Bengali, e.g. {missing[:10]}"
    assert fuzzy == []


def test_translations_keep_placeholders_and_tags():
    cat = catalogue()
    wrong = []
    for message in cat:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = placeholders(ids[-1]) | placeholders(ids[0])  # the plural may add %(num)s
        english_tags = Counter(TAG.findall(" ".join(ids)))
        for text in strings:
            # a plural's first form may leave out the count, as the English singular does
            if set(placeholders(text)) not in (set(wanted), set(placeholders(ids[0]))):
                wrong.append(("placeholders", ids[0], text))
            if stray_percent(text) and not stray_percent(ids[0]):
                wrong.append(("stray %", ids[0], text))
            tags = Counter(TAG.findall(text))
            if any(tag not in english_tags for tag in tags) or sum(tags.values()) != sum(
                    english_tags.values()) // len(ids):
                wrong.append(("tags", ids[0], text))
            if any(ord(c) < 32 for c in text):
                wrong.append(("control character", ids[0], text))
    assert wrong == []


def test_the_check_catches_a_broken_placeholder():
    # The comparison above is not vacuous: a translation that drops or renames a placeholder fails it.
    assert set(placeholders("%(name)s এর পেমেন্ট")) == set(placeholders("Payment of %(name)s"))
    assert set(placeholders("%(nam)s এর পেমেন্ট")) != set(placeholders("Payment of %(name)s"))
    assert set(placeholders("পেমেন্ট")) != set(placeholders("Payment of %(name)s"))
    assert stray_percent("১০% ঝুঁকি") and not stray_percent("%(risk)s%% ঝুঁকি")


def test_the_bengali_uses_the_agreed_terms():
    cat = catalogue()
    expected = {"Members": "সদস্য", "Membership": "সদস্যপদ", "Plan": "প্ল্যান", "Renewal": "নবায়ন",
                "Active": "সক্রিয়", "Lapsed": "মেয়াদোত্তীর্ণ", "Pending": "অপেক্ষমাণ",
                "Cancelled": "বাতিল", "Outbox": "আউটবক্স", "Receipt": "রসিদ", "Check-in": "চেক-ইন",
                "Waitlist": "অপেক্ষা তালিকা", "Grace period": "গ্রেস পিরিয়ড", "Engagement": "সম্পৃক্ততা",
                "Churn risk": "সদস্যপদ ছাড়ার ঝুঁকি"}
    assert {k: cat[k].string for k in expected} == expected


# ---------------------------------------------------------------- the pages in Bengali


@pytest.fixture
def compiled(tmp_path_factory):
    """The part compiled to <tmp>/bn/LC_MESSAGES/messages.mo."""
    directory = tmp_path_factory.mktemp("translations")
    target = directory / "bn" / "LC_MESSAGES"
    target.mkdir(parents=True)
    with (target / "messages.mo").open("wb") as f:
        write_mo(f, catalogue())
    return directory


@pytest.fixture
def app_config(compiled):
    # Accept-Language picks the language; the default is Bengali too, so a stored choice of the
    # signed-in account (when there is none) does not turn the page back to English.
    return {"BABEL_TRANSLATION_DIRECTORIES": str(compiled), "DEFAULT_LANGUAGE": "bn",
            "BABEL_DEFAULT_LOCALE": "bn"}


@pytest.fixture
def fresh_translations(app):
    """Flask-Babel keeps loaded catalogues on the process-wide Babel object: start from none and
    leave none behind, so this test's temporary catalogue reaches no other test."""
    from flask import g

    from membership.core.i18n import babel
    with app.app_context():
        babel.domain_instance.cache.clear()

    @app.teardown_request
    def _forget_the_locale(exc=None):
        # The test app keeps one app context, so `g` outlives requests: drop the locale Flask-Babel
        # cached there, as a fresh request context would, so each request picks its own language.
        g.pop("_flask_babel", None)
    yield
    with app.app_context():
        babel.domain_instance.cache.clear()


BN = {"Accept-Language": "bn"}


def test_the_staff_home_and_member_list_in_bengali(fresh_translations, client, admin_user, make_member):
    make_member(first_name="রবীন্দ্রনাথ", last_name="ঠাকুর")
    login(client, admin_user)
    home = client.get("/staff/", headers=BN)
    page = home.get_data(as_text=True)
    assert home.status_code == 200
    for text in ("মূল পরিসংখ্যান", "সদস্য খুঁজুন", "সাম্প্রতিক পেমেন্ট", "অবস্থা অনুযায়ী সদস্য", "সাইন আউট"):
        assert text in page, text
    assert "Key figures" not in page and "Recent payments" not in page
    # the charts' legends come in the page's language too (dashboard.js reads them from data-labels)
    import html
    import json
    import re
    labels = json.loads(html.unescape(re.search(r"data-labels='([^']*)'", page).group(1)))
    assert labels["grace"] == "গ্রেস পিরিয়ডে" and labels["renewed"] != "Renewed" and labels["active"] != "Active"

    listing = client.get("/staff/members", headers=BN)
    page = listing.get_data(as_text=True)
    assert listing.status_code == 200
    for text in ("সদস্য ছাঁকুন", "১ জন সদস্য", "রবীন্দ্রনাথ", "নম্বর", "মেয়াদ শেষ"):
        assert text in page, text
    assert "Filter members" not in page

    # English stays the language of a request that asks for it.
    english = client.get("/staff/members", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Filter members" in english


def test_a_flash_message_and_a_form_error_in_bengali(fresh_translations, client, admin_user, make_member):
    login(client, admin_user)
    member = make_member()
    response = client.post(f"/staff/members/{member.id}/tags", data={"tag": "স্বেচ্ছাসেবক"}, headers=BN,
                           follow_redirects=True)
    assert "ট্যাগ “স্বেচ্ছাসেবক” যোগ হয়েছে।" in response.get_data(as_text=True)  # Tag “…” added.

    response = client.post("/staff/members/new", data={"first_name": "", "joined_on": "31/01/2026"},
                           headers=BN)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "নামের প্রথম অংশ দিতে হবে।" in page  # First name is required.
    assert "2026-01-31 এর মতো করে তারিখ দিন।" in page  # Use a date like 2026-01-31.


def test_every_staff_page_renders_in_bengali(fresh_translations, app, client, admin_user, world):  # noqa: F811
    login(client, admin_user)
    failures, english, bengali, pages = [], [], 0, 0
    for rule in routes(app, prefix="/staff", method="GET"):
        url = build_url(app, rule, world["ids"])
        try:
            response = client.get(url, headers=BN)
            body = response.get_data().decode("utf-8", "replace")
        except Exception as e:  # noqa: BLE001 - a page that raises (or warns, under -W error)
            failures.append((url, type(e).__name__, str(e)[:200]))
            continue
        if response.status_code >= 500:
            failures.append((url, response.status_code))
        # (the raw HTML of an email in the outbox is the email's, not a page of the portal)
        if response.status_code == 200 and response.mimetype == "text/html" and "navbar" in body:
            pages += 1
            if "হোম" in body:  # the staff menu's Home
                bengali += 1
            else:
                english.append(url)
    assert failures == []
    assert pages >= 30 and bengali == pages, english
