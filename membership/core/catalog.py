"""The translation catalogues: extract the marked strings, merge the Bengali parts, compile, check.

Layout (all under membership/translations/):
  bn/LC_MESSAGES/messages.po   the Bengali catalogue (edited by the i18n engineer and by `update`)
  bn/LC_MESSAGES/messages.mo   its compiled form, committed so a fresh clone shows Bengali
  parts/*.po                   Bengali translations written on other branches; `update` merges them in
  messages.pot                 the extracted template (written by `extract`, not committed)

Plain functions taking paths, used by the `flask i18n` commands and by the catalogue test.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent.parent
TRANSLATIONS = ROOT / "membership" / "translations"
LOCALES = ("bn",)
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "_l": None,
            "lazy_ngettext": (1, 2), "pgettext": ((1, "c"), 2), "npgettext": ((1, "c"), 2, 3)}
COMMENT_TAGS = ("Translators:",)

_PY_FORMAT = re.compile(r"%\((\w+)\)[sdifr]|%[sdif]")
_JINJA_VAR = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def po_path(locale: str, root: Path = ROOT) -> Path:
    return root / "membership" / "translations" / locale / "LC_MESSAGES" / "messages.po"


def mo_path(locale: str, root: Path = ROOT) -> Path:
    return po_path(locale, root).with_suffix(".mo")


def extract(root: Path = ROOT) -> Catalog:
    """Every marked string of the code, the templates and the shipped email texts (babel.cfg)."""
    with open(root / "babel.cfg", encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    template = Catalog(project="Samiti", charset="utf-8", fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
            str(root), method_map, options_map, keywords=KEYWORDS, comment_tags=COMMENT_TAGS,
            strip_comment_tags=True):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def write_template(template: Catalog, root: Path = ROOT) -> Path:
    path = root / "membership" / "translations" / "messages.pot"
    _write(path, template)
    return path


def _read(path: Path, locale: str | None = None) -> Catalog:
    with open(path, "rb") as fh:
        return read_po(fh, locale=locale)


def _write(path: Path, catalog: Catalog) -> None:
    buf = io.BytesIO()
    # sorted and without line numbers: stable files that merge well between branches
    write_po(buf, catalog, width=100, sort_output=True, include_lineno=False, ignore_obsolete=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def _translated(message) -> bool:
    strings = message.string if isinstance(message.string, (list, tuple)) else (message.string,)
    return bool(strings) and all(strings)


def update(locale: str = "bn", root: Path = ROOT, template: Catalog | None = None) -> dict[str, int]:
    """Bring the catalogue of `locale` up to the code: merge every parts/*.po into it (a part's
    translation fills an empty or fuzzy entry, and replaces an older one), then update it against
    the freshly extracted strings (new ones empty, unused ones dropped, translations kept).
    No fuzzy guessing: a string without a translation stays visibly untranslated."""
    template = template or extract(root)
    path = po_path(locale, root)
    if path.exists():
        catalog = _read(path, locale)
    else:
        catalog = Catalog(locale=locale, project="Samiti", charset="utf-8", fuzzy=False)
    creation_date = catalog.creation_date
    merged = 0
    for part in sorted((root / "membership" / "translations" / "parts").glob("*.po")):
        for message in _read(part, locale):
            if not message.id or not _translated(message) or message.fuzzy:
                continue
            existing = catalog.get(message.id, message.context)
            if existing is None:
                catalog.add(message.id, message.string, context=message.context)
                merged += 1
            elif existing.string != message.string or existing.fuzzy:
                existing.string = message.string
                existing.flags.discard("fuzzy")
                merged += 1
    catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
    catalog.creation_date = creation_date  # no churn in the header on every run
    catalog.fuzzy = False
    _write(path, catalog)
    missing = sum(1 for m in catalog if m.id and not _translated(m))
    return {"messages": sum(1 for m in catalog if m.id), "merged_from_parts": merged, "untranslated": missing}


def compiled(locale: str = "bn", root: Path = ROOT) -> bytes:
    """The .mo bytes the .po of `locale` compiles to (fuzzy entries left out)."""
    buf = io.BytesIO()
    write_mo(buf, _read(po_path(locale, root), locale), use_fuzzy=False)
    return buf.getvalue()


def compile_catalog(locale: str = "bn", root: Path = ROOT) -> Path:
    path = mo_path(locale, root)
    path.write_bytes(compiled(locale, root))
    return path


@dataclass(frozen=True)
class Problem:
    msgid: str
    problem: str

    def __str__(self) -> str:
        return f"{self.problem}: {self.msgid!r}"


def placeholders(text: str) -> tuple[list[str], list[str]]:
    """The %(name)s and {{ expression }} placeholders of a string, sorted."""
    return sorted(_PY_FORMAT.findall(text)), sorted(" ".join(v.split()) for v in _JINJA_VAR.findall(text))


def check_message(message) -> list[Problem]:
    """What is wrong with one catalogue entry: untranslated, fuzzy, or placeholders broken/dropped."""
    out: list[Problem] = []
    if message.fuzzy:
        out.append(Problem(message.id if isinstance(message.id, str) else message.id[0], "fuzzy"))
    ids = message.id if isinstance(message.id, (list, tuple)) else (message.id,)
    strings = message.string if isinstance(message.string, (list, tuple)) else (message.string,)
    if not strings or not all(strings):
        return out + [Problem(ids[0], "no translation")]
    for i, string in enumerate(strings):
        source = ids[min(i, len(ids) - 1)]
        want_py, want_jinja = placeholders(source)
        got_py, got_jinja = placeholders(string)
        if len(ids) > 1:  # plural: the count may be spelled out in the singular ("one member")
            want_py = sorted(set(want_py) | set(placeholders(ids[-1])[0]))
            got_py_set, want_set = set(got_py), set(want_py)
            if not got_py_set <= want_set or not (want_set - {"num", "count"}) <= got_py_set:
                out.append(Problem(ids[0], f"placeholders {sorted(want_set)} became {sorted(got_py_set)}"))
        elif got_py != want_py:
            out.append(Problem(ids[0], f"placeholders {want_py} became {got_py}"))
        if sorted(set(got_jinja)) != sorted(set(want_jinja)):
            out.append(Problem(ids[0], f"placeholders {want_jinja} became {got_jinja}"))
    return out


def check(locale: str = "bn", root: Path = ROOT, template: Catalog | None = None) -> list[Problem]:
    """Every reason the catalogue of `locale` is not ready: marked strings it lacks or leaves
    untranslated or fuzzy, broken placeholders, and a .mo that is not the compiled .po."""
    template = template or extract(root)
    catalog = _read(po_path(locale, root), locale)
    problems: list[Problem] = []
    for message in template:
        if not message.id:
            continue
        entry = catalog.get(message.id, message.context)
        if entry is None:
            key = message.id if isinstance(message.id, str) else message.id[0]
            problems.append(Problem(key, "not in the catalogue (run `flask i18n update`)"))
            continue
        problems.extend(check_message(entry))
    mo = mo_path(locale, root)
    if not mo.exists() or mo.read_bytes() != compiled(locale, root):
        problems.append(Problem(str(mo.relative_to(root)), "out of date with the .po (run `flask i18n compile`)"))
    return problems
