"""The OpenAPI 3.1 document, built from the operation registry and the pydantic schemas that
validate the requests (so the document cannot drift from what the API accepts)."""
from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel

from membership.api.errors import CODES
from membership.api.registry import OPERATIONS, Operation
from membership.api.schemas import MAX_ID, Error

REF = "#/components/schemas/{model}"


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a value: drop the `null` branch pydantic gives optional fields."""
    options = schema.get("anyOf")
    if options:
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            merged = {k: v for k, v in schema.items() if k != "anyOf"}
            merged.update(rest[0])
            merged.pop("default", None) if merged.get("default") is None else None
            return merged
    if schema.get("default") is None:
        schema.pop("default", None)
    return schema


class _Components:
    def __init__(self):
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        for name, sub in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, sub)
        self.schemas.setdefault(model.__name__, schema)
        return {"$ref": REF.format(model=model.__name__)}


def _path_parameters(op: Operation) -> list[dict[str, Any]]:
    out = []
    for converter, name in re.findall(r"<(?:(\w+):)?(\w+)>", op.rule):
        schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID} if converter == "int" else {"type": "string"}
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null(copy.deepcopy(prop))
        description = prop.pop("description", None)
        prop.pop("title", None)
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        out.append(param)
    return out


def build_spec(*, server_url: str = "/") -> dict[str, Any]:
    components = _Components()
    error_ref = components.ref(Error, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        responses: dict[str, Any] = {}
        for status in (op.status, *op.also):
            ok: dict[str, Any] = {"description": {200: "OK", 201: "Created"}.get(status, "Success")}
            if op.response is not None:
                ok["content"] = {"application/json": {"schema": components.ref(op.response, "serialization")}}
            responses[str(status)] = ok
        for status in op.errors:
            responses[str(status)] = {"description": CODES[status][1],
                                      "content": {"application/json": {"schema": error_ref}}}
        entry: dict[str, Any] = {
            "operationId": op.endpoint, "summary": op.summary, "tags": [op.tag],
            "description": (op.description + f"\n\nNeeds a token with the `{op.scope}` scope.").strip(),
            "security": [{"bearerAuth": []}],
            "parameters": _path_parameters(op) + (_query_parameters(op.query) if op.query else []),
            "responses": responses,
            "x-scope": op.scope,
        }
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": components.ref(op.body, "validation")}}}
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Samiti API", "version": "1.0.0",
            "description": ("Members, terms, payments, events, registrations and activities of the association. "
                            "Authenticate with an API token created by an admin (Staff > Admin > API tokens, or "
                            "`flask api token create`), sent as `Authorization: Bearer <token>`; tokens in the "
                            "query string are refused. Lists are paginated: follow `links.next`. Errors have the "
                            "shape `{\"error\": {\"code\", \"message\", \"details\"}}`. Amounts are in minor units; "
                            "times are UTC (ISO 8601)."),
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": components.schemas,
                       "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                                          "description": "an API token (smt_...)"}}},
    }
