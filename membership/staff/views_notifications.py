"""Staff email pages: the Outbox (every email, its status, retry) and the email templates (admin edit,
preview against a member, reset to the shipped default)."""
from __future__ import annotations

import re

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, ngettext, lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import or_, select

from membership.core.errors import DomainError
from membership.core.i18n import LANGUAGE_NAMES, LANGUAGES, default_language
from membership.core.time import utcnow
from membership.extensions import db
from membership.members.models import Member
from membership.members.services import find_by_email
from membership.notifications import outbox, templating
from membership.notifications.models import OUTBOX_STATUSES, OutboxMessage
from membership.staff import bp
from membership.staff.forms_notifications import EmailTemplateForm
from membership.web import get_or_404, page_or_last

OUTBOX_PER_PAGE = 50
_ID = re.compile(r"[0-9]{1,9}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The HTML of an email, shown on its own page: no scripts, no requests anywhere, a unique origin.
EMAIL_HTML_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"

STATUS_LABELS = {"queued": _l('Queued'), "sending": _l('Sending'), "sent": _l('Sent'), "failed": _l('Failed'),
                 "cancelled": _l('Cancelled')}
STATUS_COLOURS = {"queued": "info", "sending": "primary", "sent": "success", "failed": "danger",
                  "cancelled": "secondary"}


def _int_arg(name: str) -> int | None:
    raw = (request.args.get(name) or "").strip()
    return int(raw) if _ID.fullmatch(raw) else None


def _outbox_filter() -> dict:
    status = request.args.get("status") or ""
    q = _CONTROL.sub(" ", request.args.get("q") or "").strip()[:200]
    template = request.args.get("template") or ""
    return {"status": status if status in OUTBOX_STATUSES else "", "q": q,
            "template": template if template in templating.TEMPLATES else "", "member": _int_arg("member")}


def _outbox_args(f: dict) -> dict:
    return {k: v for k, v in f.items() if v not in (None, "")}


@bp.get("/outbox")
def outbox_list():
    """Every email, newest first: filter by status, template or member, search address or subject."""
    f = _outbox_filter()
    stmt = select(OutboxMessage)
    if f["status"]:
        stmt = stmt.where(OutboxMessage.status == f["status"])
    if f["template"]:
        stmt = stmt.where(OutboxMessage.template_key == f["template"])
    if f["member"]:
        stmt = stmt.where(OutboxMessage.member_id == f["member"])
    if f["q"]:
        pattern = "%" + outbox._like(f["q"]) + "%"
        stmt = stmt.where(or_(OutboxMessage.to_address.ilike(pattern, escape="\\"),
                              OutboxMessage.subject.ilike(pattern, escape="\\")))
    stmt = stmt.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    page = page_or_last(stmt, per_page=OUTBOX_PER_PAGE)
    member = db.session.get(Member, f["member"]) if f["member"] else None
    return render_template("staff/notifications/outbox.html", page=page, filter=f, args=_outbox_args(f),
                           counts=outbox.status_counts(db.session), statuses=OUTBOX_STATUSES,
                           status_labels=STATUS_LABELS, status_colours=STATUS_COLOURS,
                           templates=templating.TEMPLATES, member=member)


@bp.get("/outbox/<int:message_id>")
def outbox_message(message_id: int):
    """One email as it was (or will be) sent: headers, text part, HTML source, attachments."""
    message = get_or_404(OutboxMessage, message_id)
    built, problem = None, None
    try:
        built = outbox.message_for_display(message)
    except ValueError as exc:
        problem = str(exc)
    headers = [(k, str(v)) for k, v in built.items()] if built is not None else []
    first = {"From": 0, "To": 1, "Subject": 2, "Date": 3, "Message-ID": 4}
    headers.sort(key=lambda kv: (first.get(kv[0], 5 if not kv[0].lower().startswith(("mime", "content")) else 6)))
    return render_template("staff/notifications/message.html", message=message, headers=headers, problem=problem,
                           template=templating.TEMPLATES.get(message.template_key),
                           hidden=templating.is_sensitive(message.template_key),
                           status_labels=STATUS_LABELS, status_colours=STATUS_COLOURS)


@bp.get("/outbox/<int:message_id>/html")
def outbox_message_html(message_id: int):
    """The HTML part on its own page, under a CSP sandbox: it cannot run scripts or load anything."""
    message = get_or_404(OutboxMessage, message_id)
    if templating.is_sensitive(message.template_key):
        abort(403)
    if not message.body_html:
        abort(404)
    return _sandboxed_html(message.body_html)


@bp.get("/outbox/<int:message_id>.eml")
def outbox_message_eml(message_id: int):
    """The message as an .eml file, to open in a mail program."""
    message = get_or_404(OutboxMessage, message_id)
    if templating.is_sensitive(message.template_key):
        abort(403)
    try:
        data = outbox.message_for_display(message).as_bytes()
    except ValueError:
        abort(404)
    return Response(data, mimetype="message/rfc822",
                    headers={"Content-Disposition": f'attachment; filename="message-{message.id}.eml"'})


@bp.post("/outbox/<int:message_id>/retry")
def outbox_retry(message_id: int):
    message = get_or_404(OutboxMessage, message_id)
    old_address = message.to_address
    try:
        new_address = outbox.retry(db.session, message, now=utcnow(), actor=current_user)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(str(e), "error")
    else:
        if new_address:
            text = _("Queued again: '%(subject)s' to %(new)s, the member's current address (was %(old)s). It goes "
                     "out with the next delivery run.", subject=message.subject, new=new_address, old=old_address)
        else:
            text = _("Queued again: '%(subject)s' to %(old)s. It goes out with the next delivery run.",
                     subject=message.subject, old=old_address)
        flash(text, "success")
    return redirect(url_for("staff.outbox_message", message_id=message_id))


@bp.post("/outbox/<int:message_id>/cancel")
def outbox_cancel(message_id: int):
    message = get_or_404(OutboxMessage, message_id)
    try:
        outbox.cancel(db.session, message, now=utcnow(), actor=current_user)
        db.session.commit()
    except DomainError as e:
        db.session.rollback()
        flash(str(e), "error")
    else:
        flash(_("Cancelled: '%(subject)s' to %(to_address)s will not be sent.", subject=message.subject, to_address=message.to_address), "success")
    return redirect(url_for("staff.outbox_message", message_id=message_id))


@bp.post("/outbox/retry-failed")
def outbox_retry_failed():
    q = _CONTROL.sub(" ", request.form.get("q") or "").strip()[:200]
    count = outbox.retry_failed(db.session, now=utcnow(), actor=current_user, to_address=q or None)
    db.session.commit()
    flash(ngettext("Queued again: %(num)s failed email.", "Queued again: %(num)s failed emails.", count) if count
          else _('There were no failed emails to retry.'), "success" if count else "info")
    return redirect(url_for("staff.outbox_list", status="queued" if count else "failed", q=q or None))


def _sandboxed_html(html: str) -> Response:
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = EMAIL_HTML_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------- email templates


def _require_admin() -> None:
    if not current_user.is_admin:
        abort(403)


def _template_info(key: str) -> templating.TemplateInfo:
    info = templating.TEMPLATES.get(key)
    if info is None:
        abort(404)
    return info


def _find_member(text: str) -> Member | None:
    text = (text or "").strip()
    if not text:
        return None
    if "@" in text:
        return find_by_email(db.session, text)
    return db.session.scalar(select(Member).where(Member.member_number == text.upper()))


@bp.get("/email-templates")
def email_templates():
    rows = {t.key: t for t in db.session.scalars(select(templating.EmailTemplate))}
    return render_template("staff/notifications/templates.html", templates=templating.TEMPLATES.values(),
                           custom=rows)


def _preview(key: str, source: templating.Source, member: Member | None):
    """(rendered email, reason) for `member` (sample data without one). Raises TemplateProblem."""
    info = templating.TEMPLATES[key]
    now = utcnow()
    ctx = templating.sample_context(key, now=now, member=member)
    # is_custom=False: show the error of this very text, do not fall back to the default.
    plain = templating.Source(source.subject, source.body_text, source.body_html, False)
    return templating.render_email(db.session, key, ctx, category=info.category,
                                   unsubscribe_link=ctx["unsubscribe_link"], source=plain)


@bp.route("/email-templates/<key>", methods=["GET", "POST"])
def email_template(key: str):
    """Edit (admin), or read (staff), one template, with a preview against a member or sample data.

    POST action=preview renders what was typed without saving; action=save checks and stores it.
    """
    info = _template_info(key)
    current = templating.current_source(db.session, key)
    form = EmailTemplateForm()
    status, preview, preview_error = 200, None, None
    if request.method == "GET":
        form.subject.data, form.body_text.data = current.subject, current.body_text
        form.body_html.data = current.body_html or ""
        form.preview_member.data = request.args.get("member", "")[:254]
        source, action, valid = current, "preview", True
    else:
        _require_admin()
        valid = form.validate()
        source = templating.Source(form.subject.data or "", form.body_text.data or "", form.body_html.data or None,
                                   True)
        action = request.form.get("action", "preview")
    member = _find_member(form.preview_member.data) if valid else None
    member_problem = (_("No member has the number or email '%(lookup)s'; the preview uses sample data.",
                        lookup=form.preview_member.data)
                      if valid and form.preview_member.data and member is None else None)
    if not valid:
        status = 422
    elif action == "save":
        try:
            templating.save_template(db.session, key, subject=source.subject, body_text=source.body_text,
                                     body_html=source.body_html, actor=current_user, now=utcnow())
            db.session.commit()
        except templating.TemplateProblem as e:
            db.session.rollback()
            _field_error(form, e)
            status = 422
        else:
            flash(_("Saved the '%(name)s' template. Emails queued from now on use it.", name=info.name), "success")
            missing = _languages_without_own_version(key)
            if missing:
                flash(_("People who read %(languages)s get this version too until their own is written "
                        "(the links above the form).", languages=", ".join(missing)), "warning")
            return redirect(url_for("staff.email_template", key=key, member=form.preview_member.data or None))
    else:
        try:
            if request.method == "POST":
                templating.check_template(key, subject=source.subject, body_text=source.body_text,
                                          body_html=source.body_html, now=utcnow(), member=member)
            preview = _preview(key, source, member)[0]
        except templating.TemplateProblem as e:
            _field_error(form, e)
            preview_error = str(e)
            status = 422 if request.method == "POST" else 200
    if member_problem:
        form.preview_member.errors = [member_problem]
    return render_template("staff/notifications/template_edit.html", info=info, form=form,
                           row=templating.custom_row(db.session, key), is_custom=current.is_custom, preview=preview,
                           preview_error=preview_error, member=member,
                           placeholders=templating.COMMON_PLACEHOLDERS + info.placeholders,
                           can_edit=current_user.is_admin, editing=request.method == "POST",
                           falls_back=_languages_without_own_version(key)), status


def _languages_without_own_version(key: str) -> list[str]:
    """The other languages that read the default-language staff edit of `key` because staff have not
    written a version of their own in them (names as the language calls itself: বাংলা)."""
    own = set(templating.custom_languages(db.session, key))
    if default_language() not in own:
        return []
    return [LANGUAGE_NAMES[code] for code in LANGUAGES if code not in own]


def _field_error(form: EmailTemplateForm, e: templating.TemplateProblem) -> None:
    name = e.field if e.field in ("subject", "body_text", "body_html") else "subject"
    form[name].errors = list(form[name].errors or []) + [str(e)]


@bp.post("/email-templates/<key>/reset")
def email_template_reset(key: str):
    _require_admin()
    info = _template_info(key)
    if templating.reset_template(db.session, key, actor=current_user, now=utcnow()):
        db.session.commit()
        flash(_("The '%(name)s' template is back to the shipped default.", name=info.name), "success")
    else:
        flash(_("The '%(name)s' template already is the shipped default.", name=info.name), "info")
    return redirect(url_for("staff.email_template", key=key))


@bp.get("/email-templates/<key>/preview.html")
def email_template_preview_html(key: str):
    """The saved template's HTML for a member (or sample data), on its own sandboxed page."""
    _template_info(key)
    member = _find_member(request.args.get("member", "")[:254])
    try:
        rendered, _problems = _preview(key, templating.current_source(db.session, key), member)
    except templating.TemplateProblem as e:
        return render_template("errors/error.html", code=422, message=str(e)), 422
    if not rendered.body_html:
        abort(404)
    return _sandboxed_html(rendered.body_html)
