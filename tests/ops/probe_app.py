"""The real app plus one probe route, for tests/ops/test_gunicorn.py: what a gunicorn worker sees."""
import os

from flask import jsonify

from membership import create_app

app = create_app()


@app.get("/_probe")
def _probe():
    from membership.scheduler import start_in_process
    try:
        start_in_process(app)
        refused = None
    except RuntimeError as exc:
        refused = str(exc)
    return jsonify(base_url=app.config["BASE_URL"], source=app.config["BASE_URL_SOURCE"], pid=os.getpid(),
                   scheduler_refused=refused)
