"""Member CSV import (upload -> preview -> confirm) and the CSV export of the member list.

The uploaded file waits in the instance folder under a random token, with the choices made at
upload and the preview's report, until staff confirm or discard it (or a day passes). Nothing is
written before the confirm; the confirm checks every row again (the database may have changed)
and imports the valid rows in one transaction.

A zip upload (members.transfer: Samiti's "members and plans" export) waits as its members.csv
with its plans.csv beside it; for an admin the plans are imported first, in the same transaction.
After the confirm the report (counts and every problem, no member data besides what the
messages quote) is kept under imports/reports/ for KEEP_REPORTS_SECONDS, for its report page.
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import tempfile
import time
from datetime import datetime
from pathlib import Path

from flask import (Response, abort, current_app, flash, redirect, render_template, request, stream_with_context,
                   url_for)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.utils import secure_filename

from membership.core.errors import DomainError
from membership.core.services import record_audit
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.members import csvio, transfer
from membership.plans import csvio as plans_csvio
from membership.staff import bp
from membership.staff.forms_import import ImportConfirmForm, ImportUploadForm

IMPORT_MAX_BYTES = 20 * 1024 * 1024   # about 100,000 members; the CLI takes any size
ISSUES_PER_PAGE = 100
KEEP_UPLOADS_SECONDS = 24 * 3600
KEEP_REPORTS_SECONDS = 90 * 24 * 3600  # the report of a confirmed import (no file, only its problems)
RECENT_REPORTS = 5
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")


def _upload_dir() -> Path:
    path = Path(current_app.instance_path) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _report_dir() -> Path:
    path = Path(current_app.instance_path) / "imports" / "reports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _max_bytes() -> int:
    return int(current_app.config.get("IMPORT_MAX_BYTES", IMPORT_MAX_BYTES))


def _sweep_old_uploads(folder: Path, keep_seconds: int = KEEP_UPLOADS_SECONDS) -> None:
    """Uploads nobody confirmed or discarded go after a day (they hold members' personal data);
    the reports of confirmed imports after KEEP_REPORTS_SECONDS."""
    limit = time.time() - keep_seconds
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < limit:
                path.unlink()
        except OSError:
            pass


def _store_report(token: str, meta: dict, report: csvio.ImportReport) -> None:
    """Keep what a confirmed import did, with every problem found, for its report page."""
    folder = _report_dir()
    _sweep_old_uploads(folder, KEEP_REPORTS_SECONDS)
    stored = {k: v for k, v in meta.items() if k != "report"}
    stored.update(report=report.as_dict(), imported_at=utcnow().isoformat())
    (folder / f"{token}.json").write_text(json.dumps(stored), "utf-8")


def _load_report(token: str) -> dict:
    if not _TOKEN.fullmatch(token or ""):
        abort(404)
    try:
        meta = json.loads((_report_dir() / f"{token}.json").read_text("utf-8"))
    except (OSError, ValueError):
        abort(404)
    if meta.get("user_id") != current_user.id and not current_user.is_admin:
        abort(404)
    return meta


def _parse_when(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def recent_reports(limit: int = RECENT_REPORTS) -> list[dict]:
    """The latest confirmed imports the signed-in user may see (their own; an admin: all)."""
    out = []
    paths = sorted(_report_dir().glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in paths:
        try:
            meta = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if meta.get("user_id") == current_user.id or current_user.is_admin:
            out.append({"token": path.stem, "filename": meta.get("filename", ""),
                        "imported_at": _parse_when(meta.get("imported_at")), "summary": meta["report"]})
        if len(out) >= limit:
            break
    return out


def _paths(token: str) -> tuple[Path, Path]:
    if not _TOKEN.fullmatch(token or ""):
        abort(404)
    folder = _upload_dir()
    return folder / f"{token}.csv", folder / f"{token}.json"


def _plans_path(data_path: Path) -> Path:
    """Where the plans file of a zip upload waits beside its members file."""
    return data_path.with_suffix(".plans.csv")


def _unpack_zip(data_path: Path, limit: int) -> bool:
    """A zip upload (Samiti's members-and-plans export): its members.csv replaces the upload and
    its plans.csv waits beside it. Returns whether there is a plans file. Raises ImportFileError."""
    packed = data_path.with_suffix(".zip")
    os.replace(data_path, packed)
    try:
        files = transfer.extract_zip(packed, data_path, _plans_path(data_path), max_bytes=limit)
    finally:
        _discard(packed)
    return files.plans is not None


def _load(token: str) -> tuple[Path, Path, dict]:
    """The upload and its metadata; 404 unless it exists and belongs to the signed-in user."""
    data_path, meta_path = _paths(token)
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
    except (OSError, ValueError):
        abort(404)
    if meta.get("user_id") != current_user.id or not data_path.exists():
        abort(404)
    return data_path, meta_path, meta


def _discard(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _save_upload(storage, target: Path, limit: int) -> int:
    """Copy the upload to `target` in chunks; raise ValueError past `limit` bytes."""
    size = 0
    with open(target, "wb") as out:
        while chunk := storage.stream.read(1 << 16):
            size += len(chunk)
            if size > limit:
                raise ValueError
            out.write(chunk)
    return size


def _options(meta: dict, *, dry_run: bool) -> csvio.ImportOptions:
    return csvio.ImportOptions(on_match=meta["on_match"], create_plans=bool(meta["create_plans"]), dry_run=dry_run)


def _run(path: Path, meta: dict, *, dry_run: bool) -> csvio.ImportReport:
    """The plans file first (a zip upload by an admin), then the members, in one transaction."""
    cfg = current_app.config
    plans_report = None
    if meta.get("plans"):
        plans_report = plans_csvio.import_plans(db.session, _plans_path(path), currency=cfg["CURRENCY"],
                                                actor=current_user, now=utcnow())
        meta["plans_report"] = plans_report.as_dict()
    report = csvio.import_members(db.session, path, options=_options(meta, dry_run=dry_run), today=local_today(),
                                  now=utcnow(), actor=current_user, region=cfg["PHONE_REGION"],
                                  currency=cfg["CURRENCY"], filename=meta["filename"])
    if plans_report is not None and plans_report.created:
        report.plans_created = plans_report.created + report.plans_created
    return report


@bp.route("/import", methods=["GET", "POST"])
def import_members():
    """Upload a CSV: it is checked (nothing written) and the preview shows what would happen."""
    form = ImportUploadForm()
    if not current_user.is_admin:
        del form.create_plans
    limit = _max_bytes()
    if request.method == "POST" and (request.content_length or 0) > limit + 65536:
        form.file.errors = [_("The file is larger than %(limit)s MB. Split it, or import it with the command line: flask members import FILE.", limit=limit // (1024 * 1024))]
        return render_template("staff/import/upload.html", form=form, **_upload_context()), 413
    if not form.validate_on_submit():
        return render_template("staff/import/upload.html", form=form, **_upload_context()), \
            422 if request.method == "POST" else 200
    folder = _upload_dir()
    _sweep_old_uploads(folder)
    token = secrets.token_urlsafe(24)
    data_path, meta_path = folder / f"{token}.csv", folder / f"{token}.json"
    try:
        size = _save_upload(form.file.data, data_path, limit)
    except ValueError:
        _discard(data_path)
        form.file.errors = [_("The file is larger than %(limit)s MB. Split it, or import it with the command line: flask members import FILE.", limit=limit // (1024 * 1024))]
        return render_template("staff/import/upload.html", form=form, **_upload_context()), 413
    meta = {"user_id": current_user.id, "filename": secure_filename(form.file.data.filename or "") or "upload.csv",
            "on_match": form.on_match.data if form.on_match.data in csvio.ON_MATCH else "skip",
            "create_plans": bool(current_user.is_admin and form.create_plans.data),
            "uploaded_at": utcnow().isoformat(), "size": size}
    try:
        if transfer.is_zip(data_path):
            has_plans = _unpack_zip(data_path, limit)
            # Plans are an admin's business: staff import the members of a zip against the plans here.
            meta["plans"] = has_plans and current_user.is_admin
            meta["plans_ignored"] = has_plans and not current_user.is_admin
            if meta["plans_ignored"]:
                _discard(_plans_path(data_path))
        report = _run(data_path, meta, dry_run=True)
    except csvio.ImportFileError as e:
        db.session.rollback()
        _discard(data_path, _plans_path(data_path))
        form.file.errors = [e.message]
        return render_template("staff/import/upload.html", form=form, **_upload_context()), 422
    db.session.rollback()  # a dry run writes nothing; end its read transaction
    meta["report"] = report.as_dict()
    meta_path.write_text(json.dumps(meta), "utf-8")
    return redirect(url_for("staff.import_preview", token=token))


def _upload_context() -> dict:
    return {"columns": csvio.column_reference(), "required": csvio.REQUIRED_COLUMNS,
            "max_mb": _max_bytes() // (1024 * 1024), "recent_reports": recent_reports()}


class _ListPage:
    """A page of a list already in memory, shaped like Flask-SQLAlchemy's Pagination for the
    `pagination` macro."""

    def __init__(self, items: list, page: int, per_page: int):
        self.total = len(items)
        self.per_page = per_page
        self.pages = max(1, math.ceil(self.total / per_page))
        self.page = min(max(page, 1), self.pages)
        self.items = items[(self.page - 1) * per_page:self.page * per_page]
        self.has_prev, self.has_next = self.page > 1, self.page < self.pages
        self.prev_num, self.next_num = self.page - 1, self.page + 1

    def iter_pages(self, left_edge=1, left_current=2, right_current=2, right_edge=1):
        last = 0
        for num in range(1, self.pages + 1):
            if num <= left_edge or self.page - left_current <= num <= self.page + right_current \
                    or num > self.pages - right_edge:
                if last + 1 != num:
                    yield None
                yield num
                last = num


@bp.get("/import/<token>")
def import_preview(token):
    """What the import would do: counts and the per-row problems (nothing written yet)."""
    _data, _csv, meta = _load(token)
    report = meta["report"]
    page_arg = request.args.get("page", "1")
    page_no = int(page_arg) if page_arg.isdigit() and len(page_arg) < 7 else 1
    issues = _ListPage(report["issues"], page_no, ISSUES_PER_PAGE)
    return render_template("staff/import/preview.html", token=token, meta=meta, report=report, issues=issues,
                           form=ImportConfirmForm())


@bp.post("/import/<token>/confirm")
def import_confirm(token):
    """Import the valid rows of the uploaded file in one transaction (all of them or none)."""
    data_path, meta_path, meta = _load(token)
    form = ImportConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    claimed = meta_path.with_suffix(".running")
    try:
        os.replace(meta_path, claimed)  # a double submit finds no metadata: it imports nothing
    except FileNotFoundError:
        flash(_('This import has already run.'), "info")
        return redirect(url_for("staff.import_members"))
    try:
        report = _run(data_path, meta, dry_run=False)
        db.session.commit()
    except (csvio.ImportFileError, DomainError, SQLAlchemyError) as e:
        db.session.rollback()
        os.replace(claimed, meta_path)
        current_app.logger.warning("member import %s failed: %s", meta["filename"], e)
        reason = e.message if isinstance(e, DomainError) else _("the database refused a row (it may have "
                                                                "changed since the preview)")
        flash(_("Nothing was imported: %(reason)s. Check the file again and retry.", reason=reason), "error")
        return redirect(url_for("staff.import_preview", token=token))
    _discard(data_path, claimed, _plans_path(data_path))
    _store_report(token, meta, report)
    flash(f"{meta['filename']}: {report.summary()}" + (" " + _("Rows with errors were left out.") if report.error_rows
                                                       else ""), "success")
    return redirect(url_for("staff.import_report", token=token))


@bp.get("/import/<token>/report")
def import_report(token):
    """What a confirmed import did, with every problem it found: it stays after the import."""
    meta = _load_report(token)
    report = meta["report"]
    page_arg = request.args.get("page", "1")
    page_no = int(page_arg) if page_arg.isdigit() and len(page_arg) < 7 else 1
    issues = _ListPage(report["issues"], page_no, ISSUES_PER_PAGE)
    return render_template("staff/import/preview.html", token=token, meta=meta, report=report, issues=issues,
                           form=ImportConfirmForm(), done=True)


@bp.get("/import/<token>/report.csv")
def import_report_csv(token):
    """The problems of a confirmed import as CSV (row, column, level, message), formula-safe."""
    meta = _load_report(token)
    rows = [["row", "column", "level", "message"]]
    for name, issues in (("plans.csv", (meta.get("plans_report") or {}).get("issues", [])),
                         ("", meta["report"]["issues"])):
        rows += [[f"{name} {i['row']}".strip(), i["column"], i["level"], i["message"]] for i in issues]
    data = "".join(csvio.iter_csv_text([[csvio.neutralise(str(c)) for c in row] for row in rows]))
    name = Path(meta.get("filename") or "import").stem
    return Response(data.encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}-report.csv"'})


@bp.post("/import/<token>/discard")
def import_discard(token):
    data_path, meta_path, meta = _load(token)
    if not ImportConfirmForm().validate_on_submit():
        abort(400)
    _discard(data_path, meta_path, _plans_path(data_path))
    flash(_("%(file)s was discarded; nothing was imported.", file=meta["filename"]), "info")
    return redirect(url_for("staff.import_members"))


@bp.get("/import/template.csv")
def import_template():
    """A header-only CSV with every column, to fill in."""
    return Response(csvio.template_csv().encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="samiti-members-template.csv"'})


@bp.get("/members/export")
def export_members():
    """The member list's current filter as a CSV download, streamed in batches; audited."""
    from membership.staff.views_members import parse_member_filter

    f = parse_member_filter(request.args)
    today, now = local_today(), utcnow()
    count = csvio.count_export(db.session, f)
    record_audit(db.session, actor=current_user, action="member.export", entity=None, now=now,
                 summary=f"Exported {count:,} member{'s' if count != 1 else ''} to CSV",
                 changes={"filter": f.as_args(), "count": count})
    db.session.commit()
    session = db.session

    def generate():
        try:
            for chunk in csvio.iter_csv_text(csvio.iter_export_rows(session, f, today=today)):
                yield chunk.encode("utf-8")
        finally:
            session.rollback()  # end the read transaction (SQLite holds its lock until then)

    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="members-{today.isoformat()}.csv"'})


@bp.get("/members/export.zip")
def export_move():
    """Members (the current filter) and every plan in one zip: plans.csv and members.csv, what
    another Samiti imports unchanged. Audited. Built in a temporary file, then streamed."""
    from membership.staff.views_members import parse_member_filter

    f = parse_member_filter(request.args)
    today, now = local_today(), utcnow()
    count = csvio.count_export(db.session, f)
    record_audit(db.session, actor=current_user, action="member.export", entity=None, now=now,
                 summary=f"Exported {count:,} member{'s' if count != 1 else ''} and the plans (zip)",
                 changes={"filter": f.as_args(), "count": count, "plans": True})
    db.session.commit()
    spool = tempfile.TemporaryFile()
    try:
        transfer.write_zip(db.session, spool, f, today=today)
    except BaseException:
        spool.close()
        raise
    finally:
        db.session.rollback()
    spool.seek(0)

    def generate():
        with spool:
            while chunk := spool.read(1 << 16):
                yield chunk

    return Response(generate(), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="samiti-move-{today.isoformat()}.zip"'})
