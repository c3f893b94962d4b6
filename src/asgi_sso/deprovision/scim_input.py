"""Read and validate SCIM request bodies: bounded JSON, PUT resources, PATCH operations.

Everything here is checked before the store is touched, so a hostile body gets
a 400 (RFC 7644 §3.12) and changes nothing.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import msgspec

from asgi_sso.identity.stores.base import Profile

__all__ = [
    "ScimError",
    "apply_patch",
    "apply_put",
    "filter_value",
    "parse_bool",
    "read_body",
    "read_json",
]

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_MAX_TEXT = 1024
_EMAIL_PATH = re.compile(r'emails(\[type eq "?work"?\])?(\.value)?', re.I)


class ScimError(Exception):
    """A SCIM refusal, rendered as RFC 7644 §3.12 ``Error`` with ``status``."""

    def __init__(self, status: int, scim_type: str | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.scim_type = scim_type
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
        if self.scim_type is not None:
            body["scimType"] = self.scim_type
        body["detail"] = self.detail
        return body


def _bad(detail: str, scim_type: str = "invalidValue") -> ScimError:
    return ScimError(400, scim_type, detail)


async def read_json(receive: Any, scope: Any, max_bytes: int, max_depth: int) -> Any:
    """Read the request body (refused once it passes ``max_bytes``) and decode strict JSON."""
    raw = await read_body(receive, scope, max_bytes)
    if _depth(raw) > max_depth:
        raise _bad("the JSON is nested too deeply", "invalidSyntax")
    if raw.find(b"\\u0000") != -1:  # no store keeps NUL in text: a 400, not a 503
        raise _bad("NUL characters are not allowed")
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise _bad("the body is not valid JSON", "invalidSyntax") from exc


async def read_body(receive: Any, scope: Any, max_bytes: int) -> bytes:
    """Read a request body, refused as soon as it passes ``max_bytes``."""
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                declared = int(bytes(value))
            except ValueError:
                raise _bad("bad Content-Length", "invalidSyntax") from None
            if declared > max_bytes:
                raise _bad("the request body is too large", "invalidSyntax")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _bad("the client went away", "invalidSyntax")
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > max_bytes:
            raise _bad("the request body is too large", "invalidSyntax")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting outside strings (checked before decoding)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def filter_value(escaped: str) -> str:
    """The value of a filter's quoted string (RFC 7644 §3.4.2.2: JSON string escapes).

    No store can keep NUL (PostgreSQL refuses it) or a lone surrogate (not UTF-8),
    and no userName or externalId holds a control character: each is a 400
    ``invalidValue`` before the store is asked, never a 503 from it.
    """
    try:
        # The standard library decodes a lone-surrogate escape instead of failing,
        # so it is refused as the bad value it is rather than as bad syntax.
        value: str = json.loads(f'"{escaped}"', strict=False)
    except ValueError as exc:
        raise _bad("the filter value is malformed", "invalidFilter") from exc
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise _bad("the filter value holds a control character or a lone surrogate")
    return value


def parse_bool(value: Any) -> bool:
    """A SCIM boolean; Entra ID sends ``"True"``/``"False"`` strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _bad("active must be a boolean")


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise _bad(f"{name} must be a string of at most {_MAX_TEXT} characters")
    return value or None


def _email(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 32:
        raise _bad("emails must be a list")
    chosen: str | None = None
    for item in value:
        if not isinstance(item, dict):
            raise _bad("emails must hold objects")
        address = _text(item.get("value"), "emails.value")
        if item.get("primary") is True or chosen is None:
            chosen = address or chosen
    return chosen


def apply_put(old: Profile, doc: Any) -> tuple[Profile, bool | None]:
    """A full User resource (``POST``/``PUT``) → the new profile and ``active`` (if given)."""
    if not isinstance(doc, dict):
        raise _bad("the body must be a JSON object", "invalidSyntax")
    user_name = _text(doc.get("userName"), "userName")
    if user_name is None:
        raise _bad("userName is required")
    name = doc.get("name", {})
    if name is None:
        name = {}
    if not isinstance(name, dict):
        raise _bad("name must be an object")
    _text(doc.get("externalId"), "externalId")
    profile = msgspec.structs.replace(
        old,
        user_name=user_name,
        name=_text(doc.get("displayName"), "displayName"),
        given_name=_text(name.get("givenName"), "name.givenName"),
        family_name=_text(name.get("familyName"), "name.familyName"),
        email=_email(doc.get("emails")),
    )
    active = doc.get("active")
    return profile, None if active is None else parse_bool(active)


def apply_patch(
    old: Profile, active: bool, doc: Any, max_operations: int
) -> tuple[Profile, bool | None]:
    """A ``PatchOp`` body (RFC 7644 §3.5.2) → the new profile and ``active``.

    Unknown attribute paths (extension attributes, ``title``…) are accepted and
    ignored; known ones are type-checked.
    """
    if not isinstance(doc, dict):
        raise _bad("the body must be a JSON object", "invalidSyntax")
    schemas = doc.get("schemas", [PATCH_SCHEMA])
    if not isinstance(schemas, list) or PATCH_SCHEMA not in schemas:
        raise _bad("schemas must name the PatchOp schema", "invalidSyntax")
    operations = doc.get("Operations")
    if not isinstance(operations, list) or not operations or len(operations) > max_operations:
        raise _bad(
            f"Operations must be a list of 1 to {max_operations} operations", "invalidSyntax"
        )
    fields: dict[str, Any] = {}
    state: dict[str, Any] = {"active": active}
    for op in operations:
        if not isinstance(op, dict):
            raise _bad("each operation must be an object", "invalidSyntax")
        kind = op.get("op")
        if not isinstance(kind, str) or kind.lower() not in ("add", "replace", "remove"):
            raise _bad("op must be add, replace or remove", "invalidSyntax")
        path = op.get("path")
        if path is not None and (not isinstance(path, str) or len(path) > 256):
            raise _bad("path must be a string", "invalidPath")
        if kind.lower() == "remove":
            if path is None:
                raise _bad("remove needs a path", "noTarget")
            _set(fields, state, path, None, removing=True)
        elif path is None:
            value = op.get("value")
            if not isinstance(value, dict):
                raise _bad("an operation without path needs an object value")
            for key, item in value.items():
                _set(fields, state, key, item, removing=False)
        else:
            _set(fields, state, path, op.get("value"), removing=False)
    new_active = state["active"]
    return msgspec.structs.replace(old, **fields), None if new_active == active else new_active


def _set(
    fields: dict[str, Any], state: dict[str, Any], path: str, value: Any, *, removing: bool
) -> None:
    key = path.lower()
    if key == "active":
        if removing:
            raise _bad("active cannot be removed", "mutability")
        state["active"] = parse_bool(value)
    elif key == "username":
        if removing or value is None:
            raise _bad("userName is required", "mutability")
        fields["user_name"] = _text(value, "userName")
    elif key == "displayname":
        fields["name"] = _text(value, "displayName")
    elif key == "name.givenname":
        fields["given_name"] = _text(value, "name.givenName")
    elif key == "name.familyname":
        fields["family_name"] = _text(value, "name.familyName")
    elif key == "name":
        if value is not None and not isinstance(value, dict):
            raise _bad("name must be an object")
        for part, attr in (("givenName", "given_name"), ("familyName", "family_name")):
            if value is None or part in value:
                fields[attr] = _text(None if value is None else value[part], f"name.{part}")
    elif key == "emails":
        fields["email"] = _email(value)
    elif _EMAIL_PATH.fullmatch(path):
        fields["email"] = _text(value, "emails.value")
    elif key == "externalid":
        _text(value, "externalId")  # the key of a user never changes
