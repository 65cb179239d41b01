"""The Bengali catalogue is complete and in step with the code: every marked string has a Bengali
translation (not fuzzy), no translation breaks or drops a placeholder, and the committed .mo is the
compiled .po. `flask i18n update && flask i18n compile` fixes the last one; translators fix the rest."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Message
from babel.messages.pofile import read_po

from membership.core import catalog

ROOT = catalog.ROOT


@pytest.fixture(scope="module")
def extracted():
    return catalog.extract()


def test_every_marked_string_has_a_bengali_translation_with_its_placeholders(extracted):
    assert sum(1 for m in extracted if m.id) > 400  # the extractor really read the code and templates
    problems = [str(p) for p in catalog.check("bn", template=extracted) if not p.problem.startswith("out of date")]
    assert problems == [], "\n".join(problems[:50])


def test_the_committed_mo_is_the_compiled_po():
    assert catalog.mo_path("bn").read_bytes() == catalog.compiled("bn"), \
        "run `flask --app wsgi i18n compile` and commit the .mo"


@pytest.mark.parametrize("msgid, msgstr, expected", [
    ("Hello %(name)s", "স্বাগতম, %(name)s", None),
    ("Hello %(name)s", "স্বাগতম", "placeholders"),                        # dropped
    ("Hello %(name)s", "স্বাগতম, %(nam)s", "placeholders"),              # broken
    ("Hello %(name)s", "স্বাগতম, %(name)", "placeholders"),               # lost its conversion
    ("you joined {{ association_name }}.", "আপনি {{ association_name }}-এ যোগ দিয়েছেন।", None),
    ("you joined {{ association_name }}.", "আপনি {{ association }}-এ যোগ দিয়েছেন।", "placeholders"),
    ("you joined {{ association_name }}.", "আপনি যোগ দিয়েছেন।", "placeholders"),
    ("Free", "", "no translation"),
])
def test_the_check_catches_broken_dropped_and_missing_translations(msgid, msgstr, expected):
    problems = catalog.check_message(Message(msgid, msgstr))
    if expected is None:
        assert problems == []
    else:
        assert problems and expected in problems[0].problem


def test_a_fuzzy_translation_counts_as_missing():
    problems = catalog.check_message(Message("Free", "বিনামূল্যে", flags={"fuzzy"}))
    assert [p.problem for p in problems] == ["fuzzy"]


def test_plural_translations_keep_the_count():
    good = Message(("%(num)s place left", "%(num)s places left"), ("%(num)sটি আসন বাকি", "%(num)sটি আসন বাকি"))
    bad = Message(("%(num)s place left", "%(num)s places left"), ("%(num)sটি আসন বাকি", "%(count)sটি আসন"))
    assert catalog.check_message(good) == []
    assert catalog.check_message(bad)


def _small_project(tmp_path: Path, source: str) -> Path:
    root = tmp_path / "proj"
    (root / "membership" / "translations" / "parts").mkdir(parents=True)
    (root / "templates").mkdir()
    shutil.copy(ROOT / "babel.cfg", root / "babel.cfg")
    (root / "membership" / "mod.py").write_text(source, encoding="utf-8")
    return root


def test_update_merges_parts_keeps_translations_and_compile_makes_the_check_pass(tmp_path):
    root = _small_project(tmp_path, 'from flask_babel import gettext as _\n_("Members")\n_("Renew")\n')
    (root / "membership" / "translations" / "parts" / "staff.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Members"\nmsgstr "সদস্যরা"\n\nmsgid "Not in the code"\nmsgstr "কোডে নেই"\n', encoding="utf-8")
    counts = catalog.update("bn", root=root)
    assert counts == {"messages": 2, "merged_from_parts": 2, "untranslated": 1}
    po = catalog.po_path("bn", root)
    with po.open("rb") as fh:
        cat = read_po(fh)
    assert cat.get("Members").string == "সদস্যরা" and cat.get("Not in the code") is None  # unused: dropped
    # a translator fills the last one; a second update keeps it
    cat.get("Renew").string = "নবায়ন"
    catalog._write(po, cat)
    catalog.update("bn", root=root)
    with po.open("rb") as fh:
        assert read_po(fh).get("Renew").string == "নবায়ন"
    assert [p.problem for p in catalog.check("bn", root=root)] == [
        "out of date with the .po (run `flask i18n compile`)"]
    catalog.compile_catalog("bn", root=root)
    assert catalog.check("bn", root=root) == []
    # a new string in the code: the check names it until it is updated and translated
    (root / "membership" / "mod.py").write_text('from flask_babel import gettext as _\n_("Members")\n_("Renew")\n'
                                                '_("Receipt %(number)s", number=1)\n', encoding="utf-8")
    assert [str(p) for p in catalog.check("bn", root=root)] == [
        "not in the catalogue (run `flask i18n update`): 'Receipt %(number)s'"]
