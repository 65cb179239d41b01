"""Staff pages for the language versions of an email template: each language's text (the staff
edit in that language, or what that language falls back to), its preview rendered in that
language (subject, text, dates and amounts), and for admins saving or dropping that language's
edit. The main template editor (staff.email_template) edits the DEFAULT_LANGUAGE version."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from membership.core.i18n import LANGUAGE_NAMES, LANGUAGES, clean_language, default_language, in_language
from membership.core.time import utcnow
from membership.extensions import db
from membership.notifications import templating
from membership.web import require_roles

bp = Blueprint("mail_languages", __name__, url_prefix="/staff/email-templates")
bp.before_request(require_roles("admin", "staff"))


def _info_and_language(key: str, language: str) -> tuple[templating.TemplateInfo, str]:
    info = templating.TEMPLATES.get(key)
    language = clean_language(language)
    if info is None or language is None:
        abort(404)
    return info, language


def _render_preview(key: str, info, source: templating.Source, language: str):
    now = utcnow()
    with in_language(language):
        ctx = templating.sample_context(key, now=now)
        plain = templating.Source(source.subject, source.body_text, source.body_html, False)
        rendered, _reason = templating.render_email(db.session, key, ctx, category=info.category,
                                                    unsubscribe_link=ctx["unsubscribe_link"], source=plain,
                                                    language=language)
    return rendered


@bp.route("/<key>/language/<language>", methods=["GET", "POST"])
def template_language(key: str, language: str):
    from membership.staff.forms_notifications import EmailTemplateForm

    info, language = _info_and_language(key, language)
    own = templating.custom_row(db.session, key, language)
    current = templating.current_source(db.session, key, language)
    form = EmailTemplateForm()
    status, preview, problem = 200, None, None
    if request.method == "GET":
        form.subject.data, form.body_text.data = current.subject, current.body_text
        form.body_html.data = current.body_html or ""
        source = current
        action = "preview"
    else:
        if not current_user.is_admin:
            abort(403)
        source = templating.Source(form.subject.data or "", form.body_text.data or "", form.body_html.data or None,
                                   True)
        action = request.form.get("action", "preview")
    if action == "reset":
        if templating.reset_template(db.session, key, actor=current_user, now=utcnow(), language=language):
            db.session.commit()
            flash(_("The %(language)s version of this email is removed.", language=LANGUAGE_NAMES[language]),
                  "success")
        return redirect(url_for("mail_languages.template_language", key=key, language=language))
    if request.method == "POST" and not form.validate():
        status = 422
    elif action == "save":
        try:
            templating.save_template(db.session, key, subject=source.subject, body_text=source.body_text,
                                     body_html=source.body_html, actor=current_user, now=utcnow(), language=language)
            db.session.commit()
        except templating.TemplateProblem as e:
            db.session.rollback()
            problem, status = str(e), 422
        else:
            flash(_("Saved the %(language)s version. Emails to people who read %(language)s use it from now on.",
                    language=LANGUAGE_NAMES[language]), "success")
            return redirect(url_for("mail_languages.template_language", key=key, language=language))
    if status == 200 or action == "preview":
        try:
            preview = _render_preview(key, info, source, language)
        except templating.TemplateProblem as e:
            problem, status = str(e), 422 if request.method == "POST" else 200
    if own is not None:
        state = _("Staff edited the %(language)s version.", language=LANGUAGE_NAMES[language])
    elif current.is_custom:
        state = _("No %(language)s version of its own: people who read %(language)s get the %(default)s version "
                  "that staff edited.", language=LANGUAGE_NAMES[language],
                  default=LANGUAGE_NAMES[default_language()])
    else:
        state = _("No staff edit: the shipped text, translated into %(language)s.", language=LANGUAGE_NAMES[language])
    return render_template("notifications/template_language.html", info=info, key=key, language=language,
                           languages=LANGUAGES, form=form, preview=preview, problem=problem, state=state,
                           has_own=own is not None, can_edit=current_user.is_admin,
                           placeholders=templating.COMMON_PLACEHOLDERS + info.placeholders), status
