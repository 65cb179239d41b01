"""gunicorn configuration: `gunicorn -c gunicorn.conf.py wsgi:app` (settings documented in
membership/ops/gunicorn_conf.py and the README's Production section)."""
from membership.ops.gunicorn_conf import *  # noqa: F401,F403
from membership.ops.gunicorn_conf import when_ready  # noqa: F401  (hooks are looked up by name)
