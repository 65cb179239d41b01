"""WSGI entry point of the installed package: `gunicorn -c gunicorn.conf.py membership.wsgi:app`,
`flask --app membership.wsgi ...` from any directory (the checkout's top-level wsgi.py is the same)."""
from membership import create_app

app = create_app()
