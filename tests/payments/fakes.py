"""Local fakes of Stripe and SSLCommerz for the tests: small HTTP servers on 127.0.0.1 that answer
the requests Samiti's adapters make with the providers' documented shapes, serve a hosted "pay"
page (a form with a Pay button) and, on Pay, send the signed webhook / the IPN to the app and send
the browser back to success_url. `mode` makes them fail: "error" (HTTP 500), "timeout" (no answer
in time), "refuse" (a documented refusal)."""
from __future__ import annotations

import html
import itertools
import json
import threading
import time

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from membership.payments.stripe import sign

SEQ = itertools.count(1)


class FakeServer:
    def __init__(self):
        self.mode = "ok"
        self.delay = 3.0          # seconds to sit on a request in "timeout" mode
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, form/args)
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)

    def wsgi(self, environ, start_response):
        request = Request(environ)
        data = request.form.to_dict() if request.method == "POST" else request.args.to_dict()
        self.requests.append((request.method, request.path, data))
        if self.mode == "timeout" and not request.path.startswith("/pay"):
            time.sleep(self.delay)
        if self.mode == "error" and not request.path.startswith("/pay"):
            response = Response("internal error", status=500)
        else:
            response = self.handle(request, data)
        return response(environ, start_response)

    def calls(self, path: str) -> list[dict]:
        return [d for _m, p, d in self.requests if p == path]

    @staticmethod
    def json(body, status=200):
        return Response(json.dumps(body), status=status, mimetype="application/json")

    @staticmethod
    def pay_page(title: str, amount: str, action: str) -> Response:
        return Response(f"""<!doctype html><html><head><title>{html.escape(title)}</title></head><body>
<h1>Fake payment page</h1><p id="what">{html.escape(title)}</p><p id="amount">{html.escape(amount)}</p>
<form method="post" action="{html.escape(action)}"><button type="submit" id="pay">Pay</button></form>
</body></html>""", mimetype="text/html")


class FakeStripe(FakeServer):
    secret_key = "sk_test_fake"
    webhook_secret = "whsec_fake"

    def __init__(self):
        super().__init__()
        self.sessions: dict[str, dict] = {}
        self.webhook_url: str | None = None   # where Pay sends the event (a live server)
        self.delivered: list[int] = []         # the app's answers to the webhooks sent

    def handle(self, request: Request, data: dict) -> Response:
        path = request.path
        if path.startswith("/v1/") and request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return self.json({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}, 401)
        if path == "/v1/checkout/sessions" and request.method == "POST":
            if self.mode == "refuse":
                return self.json({"error": {"type": "invalid_request_error", "message": "Invalid currency"}}, 400)
            sid = f"cs_test_{next(SEQ)}"
            session = {"id": sid, "object": "checkout.session", "url": f"{self.base}/pay/{sid}",
                       "mode": data.get("mode"), "client_reference_id": data.get("client_reference_id"),
                       "customer_email": data.get("customer_email"),
                       "amount_total": int(data["line_items[0][price_data][unit_amount]"]),
                       "currency": data["line_items[0][price_data][currency]"],
                       "name": data.get("line_items[0][price_data][product_data][name]"),
                       "metadata": {"reference": data.get("metadata[reference]")},
                       "success_url": data["success_url"], "cancel_url": data["cancel_url"],
                       "setup_future_usage": data.get("payment_intent_data[setup_future_usage]"),
                       "idempotency_key": request.headers.get("Idempotency-Key"),
                       "payment_status": "unpaid", "status": "open"}
            self.sessions[sid] = session
            return self.json({k: v for k, v in session.items() if k not in ("name", "idempotency_key")})
        if path == "/v1/payment_intents" and request.method == "POST":
            return self.json({"id": f"pi_{next(SEQ)}", "object": "payment_intent", "status": "succeeded",
                              "amount": int(data["amount"]), "currency": data["currency"]})
        if path == "/v1/refunds" and request.method == "POST":
            return self.json({"id": f"re_{next(SEQ)}", "object": "refund", "status": "succeeded",
                              "amount": int(data["amount"]), "payment_intent": data["payment_intent"]})
        if path.startswith("/pay/"):
            session = self.sessions.get(path.rsplit("/", 1)[1])
            if session is None:
                return Response("no such session", status=404)
            if request.method == "GET":
                return self.pay_page(session["name"], f"{session['amount_total']} {session['currency']}", path)
            body, headers = self.event(session["id"])
            self.delivered.append(requests.post(self.webhook_url, data=body, headers=headers, timeout=10).status_code)
            return Response(status=303, headers={"Location": session["success_url"]})
        return Response("not found", status=404)

    def event(self, session_id: str, kind: str = "checkout.session.completed", *, event_id: str | None = None,
              amount: int | None = None, secret: str | None = None, timestamp: int | None = None,
              **changes) -> tuple[bytes, dict]:
        """The webhook Stripe sends for a session (body and headers), as it signs it."""
        session = self.sessions[session_id]
        save = session.get("setup_future_usage") == "off_session"
        obj = {"id": session_id, "object": "checkout.session", "client_reference_id": session["client_reference_id"],
               "metadata": session["metadata"], "amount_total": session["amount_total"] if amount is None else amount,
               "currency": session["currency"], "payment_status": "paid" if kind.endswith("completed") else "unpaid",
               "status": "complete", "payment_intent": f"pi_for_{session_id}",
               "customer": f"cus_for_{session_id}" if save else None}
        obj.update(changes)
        if save:
            obj["payment_intent"] = {"id": f"pi_for_{session_id}", "payment_method": f"pm_for_{session_id}"}
        event = {"id": event_id or f"evt_{next(SEQ)}", "object": "event", "type": kind, "created": int(time.time()),
                 "data": {"object": obj}}
        body = json.dumps(event).encode()
        header = sign(body, secret or self.webhook_secret, timestamp or int(time.time()))
        return body, {"Stripe-Signature": header, "Content-Type": "application/json"}


class FakeSSLCommerz(FakeServer):
    store_id = "teststore"
    store_password = "teststore@ssl"

    def __init__(self):
        super().__init__()
        self.sessions: dict[str, dict] = {}   # by tran_id
        self.validations: dict[str, dict] = {}  # by val_id

    def _creds_ok(self, data: dict) -> bool:
        return data.get("store_id") == self.store_id and data.get("store_passwd") == self.store_password

    def handle(self, request: Request, data: dict) -> Response:
        path = request.path
        if path == "/gwprocess/v4/api.php":
            if not self._creds_ok(data):
                return self.json({"status": "FAILED", "failedreason": "Store Credential Error Or Store is De-active"})
            if self.mode == "refuse":
                return self.json({"status": "FAILED", "failedreason": "Invalid Data imputed to call the API"})
            key = f"SK{next(SEQ):08d}"
            self.sessions[data["tran_id"]] = {**data, "sessionkey": key}
            return self.json({"status": "SUCCESS", "failedreason": "", "sessionkey": key,
                              "GatewayPageURL": f"{self.base}/pay/{data['tran_id']}", "storeBanner": "",
                              "storeLogo": "", "desc": []})
        if path == "/validator/api/validationserverAPI.php":
            if not self._creds_ok(data):
                return self.json({"status": "INVALID_TRANSACTION", "error": "Store credential mismatch"})
            record = self.validations.get(data.get("val_id", ""))
            if record is None:
                return self.json({"status": "INVALID_TRANSACTION"})
            answer = dict(record)
            record["status"] = "VALIDATED"  # SSLCommerz: VALID the first time, VALIDATED after
            return self.json(answer)
        if path == "/validator/api/merchantTransIDvalidationAPI.php":
            if not self._creds_ok(data):
                return self.json({"APIConnect": "INVALID_REQUEST", "errorReason": "Store credential mismatch"})
            return self.json({"APIConnect": "DONE", "bank_tran_id": data.get("bank_tran_id"),
                              "trans_id": None, "refund_ref_id": f"RF{next(SEQ)}", "status": "success",
                              "errorReason": ""})
        if path.startswith("/pay/"):
            session = self.sessions.get(path.rsplit("/", 1)[1])
            if session is None:
                return Response("no such session", status=404)
            if request.method == "GET":
                return self.pay_page(session["product_name"], f"{session['total_amount']} {session['currency']}",
                                     path)
            form = self.paid(session["tran_id"])
            requests.post(session["ipn_url"], data=form, timeout=10)
            return Response(status=303, headers={"Location": session["success_url"]})
        return Response("not found", status=404)

    def paid(self, tran_id: str, *, amount: str | None = None) -> dict:
        """The payer paid: the validation record is kept and the IPN form returned (as SSLCommerz posts it)."""
        session = self.sessions[tran_id]
        n = next(SEQ)
        val_id = f"{n:06d}{tran_id[-6:]}"
        record = {"status": "VALID", "tran_date": "2026-12-06 10:00:00", "tran_id": tran_id, "val_id": val_id,
                  "amount": amount or session["total_amount"], "store_amount": session["total_amount"],
                  "currency": "BDT", "bank_tran_id": f"BT{n:010d}", "card_type": "BKASH-BKash",
                  "currency_type": session["currency"], "currency_amount": amount or session["total_amount"],
                  "risk_level": "0", "risk_title": "Safe"}
        self.validations[val_id] = record
        return {"tran_id": tran_id, "val_id": val_id, "amount": record["amount"], "currency": "BDT",
                "card_type": record["card_type"], "store_amount": record["store_amount"],
                "bank_tran_id": record["bank_tran_id"], "status": "VALID", "tran_date": record["tran_date"],
                "currency_type": record["currency_type"], "currency_amount": record["currency_amount"],
                "value_a": tran_id, "verify_sign": "x", "verify_key": "amount,bank_tran_id"}


