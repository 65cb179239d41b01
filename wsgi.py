"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""
from membership import create_app

app = create_app()
