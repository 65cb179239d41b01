"""How an API operation is declared: one decorator gives the URL rule, the scope it needs, the
schemas that validate its query string and body, and its entry in the OpenAPI document."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import current_app, g, request
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError
from sqlalchemy.exc import IntegrityError

from membership.api import bp
from membership.api.errors import ApiError
from membership.core.errors import DomainError
from membership.extensions import db

MAX_BODY_BYTES = 64 * 1024
_ERROR_CODES = {400: "bad_request", 404: "not_found", 409: "conflict", 422: "validation_failed"}


@dataclass
class Operation:
    method: str
    rule: str  # Flask form: /members/<int:member_id>
    endpoint: str
    summary: str
    description: str
    tag: str
    scope: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    also: tuple[int, ...] = ()
    errors: tuple[int, ...] = ()
    path_params: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """OpenAPI form: /api/v1/members/{member_id}"""
        import re
        return bp.url_prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", self.rule)


OPERATIONS: list[Operation] = []


def pydantic_details(error: PydanticError, *, prefix: str = "") -> list[dict[str, Any]]:
    out = []
    for e in error.errors(include_url=False, include_context=False, include_input=False):
        out.append({"field": prefix + ".".join(str(p) for p in e["loc"]) if e["loc"] else prefix.rstrip(".") or None,
                    "message": e["msg"]})
    return out


def parse_query(model: type[BaseModel]) -> BaseModel:
    values = {}
    for key in request.args:
        items = request.args.getlist(key)
        if len(items) > 1:
            raise ApiError(422, f"Give {key} once.", details=[{"field": key, "message": "given more than once"}])
        values[key] = items[0]
    try:
        return model.model_validate(values)
    except PydanticError as e:
        raise ApiError(422, "The query string is not valid.", details=pydantic_details(e)) from None


def parse_body(model: type[BaseModel]) -> BaseModel:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, f"The body is larger than {MAX_BODY_BYTES // 1024} KiB.")
    if request.mimetype != "application/json":
        raise ApiError(415)
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"The body is larger than {MAX_BODY_BYTES // 1024} KiB.")
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "The body is not valid JSON.")
    if not isinstance(data, dict):
        raise ApiError(422, "The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except PydanticError as e:
        raise ApiError(422, details=pydantic_details(e)) from None


def require_scope(scope: str) -> None:
    token = g.api_token
    if scope not in token.scope_set:
        raise ApiError(403, f"This token does not have the {scope} scope.",
                       details={"required": scope, "token_scopes": sorted(token.scope_set)})


def operation(rule: str, *, method: str, summary: str, tag: str, scope: str, query=None, body=None,
              response=None, status: int = 200, also: tuple[int, ...] = (), errors: tuple[int, ...] = (),
              description: str = ""):
    """Declare an API operation. The view receives `query=` and `body=` (validated models) when the
    operation has them, and returns a dict (the JSON body), (dict, headers) or (dict, headers,
    status) for one of the `also` statuses. Domain errors become
    4xx JSON errors and the transaction is rolled back; a successful write is committed here, once."""
    def decorator(fn):
        @wraps(fn)
        def view(**kwargs):
            require_scope(scope)
            if query is not None:
                kwargs["query"] = parse_query(query)
            if body is not None:
                kwargs["body"] = parse_body(body)
            try:
                result = fn(**kwargs)
                db.session.commit()
            except DomainError as e:
                db.session.rollback()
                status_code = e.status_code if e.status_code in _ERROR_CODES else 409
                details = [{"field": e.field, "message": e.message}] if e.field else None
                raise ApiError(status_code, e.message, details=details) from None
            except IntegrityError:
                # a concurrent request wrote the same unique value first
                db.session.rollback()
                raise ApiError(409, "This conflicts with another record (it may have just been written).") from None
            headers, status_code = {}, status
            if isinstance(result, tuple):
                result, headers, *rest = result
                status_code = rest[0] if rest else status
            resp = current_app.json.response(result)
            resp.status_code = status_code
            resp.headers.update(headers)
            return resp

        bp.add_url_rule(rule, endpoint=fn.__name__, view_func=view, methods=[method])
        OPERATIONS.append(Operation(method=method.lower(), rule=rule, endpoint=fn.__name__, summary=summary,
                                    description=description or (fn.__doc__ or "").strip(), tag=tag,
                                    scope=scope, query=query, body=body, response=response, status=status,
                                    also=also, errors=errors))
        return view
    return decorator


# ---------------------------------------------------------------- keyset pagination


def page_of(stmt, id_column, query, serialize, endpoint: str, **view_args) -> dict:
    """A page of `stmt` in id order after the id `query.after` (keyset pagination: stable while rows
    are added, and as fast on the last page as on the first), with the link to the next one."""
    from flask import url_for

    after = query.after
    rows = list(db.session.scalars(stmt.where(id_column > after).order_by(None).order_by(id_column)
                                   .limit(query.limit + 1)))
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    next_link = None
    if more:
        args = {k: v for k, v in request.args.items() if k != "after"}
        args["after"] = rows[-1].id
        next_link = url_for(f"api.{endpoint}", **view_args, **args)
    return {"data": [serialize(r) for r in rows], "links": {"next": next_link}}
