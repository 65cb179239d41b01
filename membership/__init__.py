"""Samiti: membership management for associations. `create_app` is the only thing here."""
from __future__ import annotations

from flask import Flask

from membership.core.paths import CHECKOUT as ROOT  # noqa: F401  (the repository, for tests and tools)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application: configuration, extensions, blueprints, commands. No work at import."""
    from membership.core.paths import default_instance_path, migrations_dir, templates_dir

    instance = (test_config or {}).get("INSTANCE_PATH") or str(default_instance_path())
    app = Flask(__name__, template_folder=str(templates_dir()), instance_path=str(instance),
                instance_relative_config=True)
    from membership.config import load_config

    load_config(app, test_config)

    from membership import web
    from membership.extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    from membership.members.search_index import include_name

    migrate.init_app(app, db, directory=str(migrations_dir()), render_as_batch=True, compare_type=True,
                     include_name=include_name)
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    limiter.init_app(app)
    login_manager.init_app(app)
    from membership.core import i18n
    i18n.init_app(app)

    import membership.models  # noqa: F401  (every model registered with the metadata)

    web.init_app(app)

    from membership.admin import bp as admin_bp
    from membership.auth import bp as auth_bp
    from membership.portal import bp as portal_bp
    from membership.staff import bp as staff_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(portal_bp)
    from membership.notifications.views import bp as mail_bp
    app.register_blueprint(mail_bp)
    from membership.notifications.views_languages import bp as mail_languages_bp
    app.register_blueprint(mail_languages_bp)
    from membership.signup import bp as signup_bp
    app.register_blueprint(signup_bp)
    from membership.events.views import bp as events_bp
    app.register_blueprint(events_bp)
    from membership.payments.views import init_app as init_payments
    init_payments(app)
    from membership import ops
    ops.init_app(app)
    from membership.surveys.views import init_app as init_surveys
    init_surveys(app)
    from membership.referrals.views import init_app as init_referrals
    init_referrals(app)
    from membership import api
    api.init_app(app)
    from membership.payments.autorenew_views import init_app as init_autorenew
    init_autorenew(app)

    from membership import cli

    cli.init_app(app)
    return app
