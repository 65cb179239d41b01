"""`flask members import|export`: the member CSV from the command line (any size, with progress)."""
from __future__ import annotations

from flask_babel import gettext as _
import csv
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import MultiDict

from membership.core.errors import DomainError
from membership.core.services import record_audit
from membership.core.time import local_today, utcnow
from membership.extensions import db
from membership.commands.common import require_schema
from membership.members import csvio, transfer
from membership.plans import csvio as plans_csvio
from membership.members.models import MEMBER_STATUSES
from membership.members.queries import MemberFilter

# Exit codes: 0 all rows fine; 1 nothing imported (the file or the database failed); 2 the valid
# rows were imported (or, with --dry-run, would be) but some rows have errors.
EXIT_ROW_ERRORS = 2


@click.group("members", cls=AppGroup)
def members_group():
    """Import and export members as CSV."""


def _format_issue(issue: csvio.Issue) -> str:
    where = f"row {issue.row}" + (f", {issue.column}" if issue.column else "")
    return f"{where}: {'warning: ' if issue.level == 'warning' else ''}{issue.message}"


@members_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=True, path_type=Path))
@click.option("--plans", "plans_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A plans CSV (as members export --plans writes it), imported first. A zip or a folder "
                   "with plans.csv in it needs no --plans.")
@click.option("--dry-run", is_flag=True, help="Check every row and print the report; write nothing.")
@click.option("--on-match", type=click.Choice(csvio.ON_MATCH), default="skip", show_default=True,
              help="What to do with members already in Samiti (same email or member number).")
@click.option("--create-plans", is_flag=True,
              help="Create plans with unknown codes instead of refusing the rows: a guess (free, lifetime when "
                   "the file gives no end dates, else one year with 30 days' grace), reported per plan. The "
                   "plans file carries the real settings.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every problem to this CSV file (row, column, level, message).")
def import_command(file: Path, plans_path: Path | None, dry_run: bool, on_match: str, create_plans: bool,
                   report_path: Path | None):
    """Import members (and their current term) from FILE: a members CSV, or a zip or folder
    holding members.csv and plans.csv (as `members export move.zip` writes them).

    The plans are imported first (new codes are created; existing ones are kept). Prints one line
    per problem (row numbers as a spreadsheet shows them) and a summary. Exit status: 0 when every
    row is fine, 1 when nothing was imported, 2 when rows with errors were left out."""
    require_schema()
    try:
        with transfer.open_move(file, plans_path) as files:
            _import(files, file.name, dry_run=dry_run, on_match=on_match, create_plans=create_plans,
                    report_path=report_path)
    except csvio.ImportFileError as e:
        raise click.ClickException(f"{file}: {e.message}")


def _import(files: transfer.MoveFiles, filename: str, *, dry_run: bool, on_match: str, create_plans: bool,
            report_path: Path | None) -> None:
    file = files.members
    try:
        info = csvio.inspect_file(file)
    except csvio.ImportFileError as e:
        raise click.ClickException(f"{file.name}: {e.message}")
    options = csvio.ImportOptions(on_match=on_match, create_plans=create_plans, dry_run=dry_run)
    cfg = current_app.config
    issues: list[csvio.Issue] = []
    report_file = open(report_path, "w", newline="", encoding="utf-8-sig") if report_path else None
    writer = csv.writer(report_file) if report_file else None
    if writer:
        writer.writerow(["row", "column", "level", "message"])

    def on_issue(issue: csvio.Issue) -> None:
        if len(issues) < csvio.MAX_ISSUES:
            issues.append(issue)
        if writer:
            writer.writerow([issue.row, issue.column, issue.level, csvio.neutralise(issue.message)])

    plans_report = None
    try:
        if files.plans is not None:
            try:
                plans_report = plans_csvio.import_plans(db.session, files.plans, currency=cfg["CURRENCY"],
                                                        actor=None, now=utcnow())
            except csvio.ImportFileError as e:
                raise click.ClickException(f"{files.plans.name}: {e.message}")
            for issue in plans_report.issues:
                click.echo(f"{files.plans.name} " + _format_issue(issue))
                if writer:
                    writer.writerow([f"{files.plans.name} {issue.row}", issue.column, issue.level,
                                     csvio.neutralise(issue.message)])
        with click.progressbar(length=info.rows, label="Checking" if dry_run else "Importing",
                               file=sys.stderr, show_pos=True) as bar:
            report = csvio.import_members(
                db.session, file, options=options, today=local_today(), now=utcnow(), actor=None,
                region=cfg["PHONE_REGION"], currency=cfg["CURRENCY"], filename=filename, info=info,
                progress=bar.update, on_issue=on_issue)
        if plans_report is not None and plans_report.created:
            report.plans_created = plans_report.created + report.plans_created
        if dry_run:
            db.session.rollback()
        else:
            db.session.commit()
    except (DomainError, SQLAlchemyError) as e:
        db.session.rollback()
        reason = e.message if isinstance(e, DomainError) else _("the database refused a row (%(error)s)",
                                                                error=e.__class__.__name__)
        raise click.ClickException(_("Nothing was imported: %(reason)s.", reason=reason))
    except click.ClickException:
        db.session.rollback()
        raise
    finally:
        if report_file:
            report_file.close()
    for issue in issues:
        click.echo(_format_issue(issue))
    if report.issue_count > len(issues):
        click.echo(f"... and {report.issue_count - len(issues):,} more problems"
                   + (f" (all of them are in {report_path})." if report_path else " (use --report FILE)."))
    if plans_report is not None:
        click.echo(plans_report.summary())
    elif create_plans and report.plans_created:
        click.echo("No plans file was given: the plans above were guessed (see the warnings); "
                   "`members export FILE.zip` on the old instance writes the real ones.")
    click.echo(report.summary())
    if report.error_rows or (plans_report is not None and plans_report.error_rows):
        sys.exit(EXIT_ROW_ERRORS)


@members_group.command("export")
@click.argument("file", type=click.Path(allow_dash=True))
@click.option("--plans", "plans_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the plans (every setting) to this CSV, for `members import --plans`.")
@click.option("--status", multiple=True, type=click.Choice(MEMBER_STATUSES),
              help="Only members with this status (repeat for several).")
@click.option("--search", default="", help="Only members matching this name, email, number or phone.")
@click.option("--bom/--no-bom", default=True, show_default=True,
              help="Start the file with a UTF-8 byte-order mark (Excel needs it to read non-ASCII names).")
def export_command(file: str, plans_path: Path | None, status: tuple[str, ...], search: str, bom: bool):
    """Export members with their plan and current term to a CSV FILE (- for standard output).

    FILE ending in .zip, or an existing folder: plans.csv and members.csv together, the whole move
    to another instance (`members import FILE` there reads both)."""
    require_schema()
    f = MemberFilter.from_args(MultiDict([("q", search)] + [("status", s) for s in status]))
    today, now = local_today(), utcnow()
    total = csvio.count_export(db.session, f)
    record_audit(db.session, actor=None, action="member.export", entity=None, now=now,
                 summary=f"Exported {total:,} members to CSV (command line)",
                 changes={"filter": f.as_args(), "count": total})
    db.session.commit()
    folder = file != "-" and Path(file).is_dir()
    as_zip = file.lower().endswith(".zip")
    if plans_path is not None:
        plans_path.write_bytes(plans_csvio.plans_csv(db.session, bom=bom))
    out = None if folder else sys.stdout.buffer if file == "-" else open(file, "wb")
    try:
        with click.progressbar(length=total, label="Exporting", file=sys.stderr, show_pos=True) as bar:
            if folder:
                transfer.write_folder(db.session, Path(file), f, today=today, bom=bom, progress=bar.update)
            elif as_zip:
                transfer.write_zip(db.session, out, f, today=today, bom=bom, progress=bar.update)
            else:
                csvio.export_members(db.session, out, f, today=today, bom=bom, progress=bar.update)
        if out is not None:
            out.flush()
    finally:
        db.session.rollback()
        if out is not None and file != "-":
            out.close()
    if file != "-":
        where = f"{file} (plans.csv and members.csv)" if folder or as_zip else file
        click.echo(_("Exported %(count)s members to %(file)s.", count=format(total, ","), file=where)
                   + (f" Plans: {plans_path}." if plans_path else ""), err=True)
