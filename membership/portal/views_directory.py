"""The member directory in the portal: current members who chose to be listed, searchable by name
and organisation, each showing only what they chose to share; and the page where a member makes
those choices. Only signed-in current members (active or grace) browse it; staff use the staff
member list instead (the portal blueprint admits members only)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel import gettext as _
from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField

from membership.core.time import utcnow
from membership.extensions import db
from membership.portal import bp
from membership.portal.views_help import current_member, page_arg
from membership.privacy import directory

PER_PAGE = 24


class DirectorySettingsForm(FlaskForm):
    directory_opt_in = BooleanField(_l("List me in the member directory"))
    directory_show_organization = BooleanField(_l("Show my organisation and job title"))
    directory_show_city = BooleanField(_l("Show my city"))
    directory_show_email = BooleanField(_l("Show my email address"))
    directory_show_phone = BooleanField(_l("Show my phone number"))


@bp.get("/directory", endpoint="directory")
def directory_page():
    member = current_member()
    if not directory.can_browse(member):
        return render_template("portal/directory/closed.html", member=member), 403
    q = directory.clean_query(request.args.get("q"))
    page = db.paginate(directory.directory_query(q), page=page_arg(), per_page=PER_PAGE, error_out=False)
    entries = [directory.entry(m) for m in page.items]
    return render_template("portal/directory/index.html", page=page, entries=entries, q=q, member=member,
                           args={"q": q} if q else {})


@bp.route("/directory/settings", methods=["GET", "POST"])
def directory_settings():
    """Listed or not, and what to show: every field its own choice, all off unless turned on."""
    member = current_member()
    form = DirectorySettingsForm(obj=member if request.method == "GET" else None)
    if request.method == "POST" and form.validate_on_submit():
        choices = {name: form[name].data for name in directory.SETTING_FIELDS}
        changed = directory.set_sharing(db.session, member, choices, actor=current_user._get_current_object(),
                                        now=utcnow())
        db.session.commit()
        if not changed:
            flash(_("Nothing changed."), "info")
        elif member.directory_opt_in:
            shown = [label for name, label in (("directory_show_organization", _("organisation")),
                                                ("directory_show_city", _("city")), ("directory_show_email", _("email")),
                                                ("directory_show_phone", _("phone")))
                     if getattr(member, name)]
            if shown:
                flash(_("Saved. Other members see your name, %(details)s.", details=", ".join(shown)), "success")
            else:
                flash(_("Saved. Other members see your name."), "success")
        else:
            flash(_("Saved. You are not listed in the member directory."), "success")
        return redirect(url_for("portal.directory_settings"))
    return render_template("portal/directory/settings.html", form=form, member=member), \
        (422 if request.method == "POST" else 200)
