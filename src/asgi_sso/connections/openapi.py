"""The OpenAPI 3.1 document of the connections admin API.

Schemas come from the structs themselves (``msgspec.json.schema_components``), so
the document follows the model; secrets are ``writeOnly`` in what is sent and
appear only as ``has_<secret>`` booleans in what is returned.
"""

from __future__ import annotations

import copy
from typing import Any, Final

import msgspec

from asgi_sso.config import Secret
from asgi_sso.connections.model import CONNECTION_ID, Connection
from asgi_sso.connections.probe import ProbeReport

__all__ = ["ERROR_CODES", "openapi_document"]

ERROR_CODES: Final = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
    422: "invalid_connection",
    503: "temporarily_unavailable",
}
"""The ``error`` member of each error status."""

_SECRETS = ("client_secret", "client_key", "scim_secret")
_REF = "#/components/schemas/{name}"
_JSON = "application/json"


def _secret_schema(kind: type) -> dict[str, Any]:
    if kind is Secret:
        return {"type": "string", "minLength": 1, "writeOnly": True}
    raise NotImplementedError


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _schemas() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(
        [Connection, ProbeReport], schema_hook=_secret_schema, ref_template=_REF
    )
    connection = schemas["Connection"]
    connection["description"] = "A connection as sent: secrets are write-only."
    public = copy.deepcopy(connection)
    public["title"] = "ConnectionPublic"
    public["description"] = "A connection as returned: secrets only say whether they are set."
    for name in _SECRETS:
        del public["properties"][name]
        public["properties"][f"has_{name}"] = {"type": "boolean", "readOnly": True}
    public["required"] = sorted(public["properties"])
    patch = {
        "title": "ConnectionPatch",
        "description": (
            "A JSON merge patch (RFC 7396): named fields replace, the members of tiers and "
            "authorize_params merge, null resets a field to its default (removes a secret)."
        ),
        "type": "object",
        "properties": {
            name: {"anyOf": [{k: v for k, v in prop.items() if k != "default"}, {"type": "null"}]}
            for name, prop in connection["properties"].items()
        },
        "additionalProperties": False,
    }
    schemas.update(
        ConnectionPublic=public,
        ConnectionPatch=patch,
        ConnectionList={
            "type": "object",
            "properties": {"connections": {"type": "array", "items": _ref("ConnectionPublic")}},
            "required": ["connections"],
        },
        Error={
            "type": "object",
            "properties": {
                "error": {"enum": sorted(set(ERROR_CODES.values()))},
                "error_description": {"type": "string"},
                "status": {"type": "integer"},
            },
            "required": ["error", "error_description", "status"],
        },
    )
    return schemas


def _body(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}


def _operation(
    summary: str,
    ok: tuple[int, str | None, str],
    errors: tuple[int, ...],
    request: str | None = None,
) -> dict[str, Any]:
    status, schema, description = ok
    answer = _body(schema, description) if schema else {"description": description}
    responses: dict[str, Any] = {str(status): answer}
    for code in (*errors, 503):
        responses[str(code)] = {"$ref": f"#/components/responses/{code}"}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if request is not None:
        media = {"schema": _ref(request)}
        content = {_JSON: media}
        if request == "ConnectionPatch":
            content["application/merge-patch+json"] = media
        operation["requestBody"] = {"required": True, "content": content}
    return operation


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/": {
            "get": _operation(
                "List the connections", (200, "ConnectionList", "Every connection"), ()
            ),
            "post": _operation(
                "Add a connection",
                (201, "ConnectionPublic", "Added"),
                (400, 409, 415, 422),
                request="Connection",
            ),
        },
        "/{id}": {
            "get": _operation(
                "Show a connection", (200, "ConnectionPublic", "The connection"), (404,)
            ),
            "patch": _operation(
                "Change some fields of a connection",
                (200, "ConnectionPublic", "Changed"),
                (400, 404, 409, 415, 422),
                request="ConnectionPatch",
            ),
            "delete": _operation("Delete a connection", (204, None, "Deleted"), (404,)),
        },
        "/{id}/test": {
            "post": _operation(
                "Check a connection against its provider",
                (200, "ProbeReport", "The findings; ok is false when a check failed"),
                (404,),
            )
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "The OpenAPI document"}},
            }
        },
    }
    summaries = {
        "disable": "Disable a connection (sessions opened before stay ended)",
        "enable": "Enable a disabled connection",
    }
    for name in summaries:
        paths[f"/{{id}}/{name}"] = {
            "post": _operation(summaries[name], (200, "ConnectionPublic", "Done"), (404, 409, 422))
        }
    parameter = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{CONNECTION_ID.pattern}$"},
    }
    for path, item in paths.items():
        if "{id}" in path:
            item["parameters"] = [parameter]
    return paths


def openapi_document(title: str = "Connections admin API") -> dict[str, Any]:
    """The OpenAPI 3.1 document of :class:`~asgi_sso.connections.admin.ConnectionsAdminApp`."""
    responses = {
        str(status): _body("Error", f"{code.replace('_', ' ').capitalize()}")
        for status, code in ERROR_CODES.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1",
            "description": (
                "Manage SSO connections. This API has no authentication of its own: "
                "mount it behind the application's admin authentication."
            ),
        },
        "paths": _paths(),
        "components": {"schemas": _schemas(), "responses": responses},
    }
