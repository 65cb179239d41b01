"""`flask i18n ...`: the translation catalogues (membership.core.catalog)."""
import click

from membership.core import catalog


@click.group("i18n")
def i18n_group() -> None:
    """Translations: extract strings, merge and update the Bengali catalogue, compile, check."""


@i18n_group.command("extract")
def extract_cmd() -> None:
    """Write membership/translations/messages.pot from the code, templates and email texts."""
    template = catalog.extract()
    path = catalog.write_template(template)
    click.echo(f"{sum(1 for m in template if m.id)} strings written to {path.relative_to(catalog.ROOT)}")


@i18n_group.command("update")
def update_cmd() -> None:
    """Extract, merge translations/parts/*.po into each catalogue, update it (translations kept)."""
    template = catalog.extract()
    catalog.write_template(template)
    for locale in catalog.LOCALES:
        counts = catalog.update(locale, template=template)
        click.echo(f"{locale}: {counts['messages']} strings, {counts['merged_from_parts']} taken from parts/, "
                   f"{counts['untranslated']} without a translation")


@i18n_group.command("compile")
def compile_cmd() -> None:
    """Compile each catalogue to its .mo (commit it: a fresh clone then shows the translations)."""
    for locale in catalog.LOCALES:
        path = catalog.compile_catalog(locale)
        click.echo(f"{locale}: {path.relative_to(catalog.ROOT)}")


@i18n_group.command("check")
def check_cmd() -> None:
    """Fail when a marked string has no translation, is fuzzy, breaks a placeholder, or the .mo is stale."""
    failed = False
    template = catalog.extract()
    for locale in catalog.LOCALES:
        problems = catalog.check(locale, template=template)
        for problem in problems:
            click.echo(f"{locale}: {problem}", err=True)
        failed = failed or bool(problems)
        if not problems:
            click.echo(f"{locale}: complete")
    if failed:
        raise SystemExit(1)
