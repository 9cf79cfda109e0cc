"""The OpenAPI document, generated from the routes and the msgspec types they decode and answer.

Each route function carries a `Doc` (the `@doc(...)` decorator). `parse()` refuses to
decode a body into any type other than the one its route documents, and `answer()` to
send an answer of any other type, so the document cannot drift from what the code
accepts and answers without the test suite noticing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Route

from app.answers import Error

STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad input",
    401: "No or invalid credentials",
    403: "Not allowed",
    404: "Not found",
    409: "Conflicting state",
    413: "Too large",
    414: "Request target too long",
    415: "Unsupported body type",
    422: "Understood but refused (an Idempotency-Key reused for another request)",
    429: "Over a limit",
    502: "Upstream failed",
    503: "Unavailable, try again",
}


@dataclass(frozen=True)
class Param:
    """A query parameter: what it means, and the JSON schema of its value."""

    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


def choice(description: str, *values: str) -> Param:
    return Param(description, {"type": "string", "enum": list(values)})


def whole(description: str, minimum: int, maximum: int) -> Param:
    return Param(description, {"type": "integer", "minimum": minimum, "maximum": maximum})


@dataclass(frozen=True)
class Doc:
    summary: str
    tag: str
    answer: Any = None  # the JSON answer's type: an Answer Struct, or a union of them
    body: type | None = None
    form: dict[str, str] | None = None  # multipart or urlencoded fields: name -> "string"/"binary"
    query: dict[str, str | Param] = field(default_factory=dict)  # name -> description or Param
    auth: bool = True
    admin: bool = False
    ok: int = 200
    media: dict[str, str] = field(default_factory=dict)  # other content types: -> string/binary
    also: tuple[int, ...] = ()  # statuses besides `ok` that carry the same answer (health's 503)
    errors: tuple[int, ...] = ()  # statuses this route can answer beyond the common ones


def doc(
    summary: str, tag: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        function.__openapi__ = Doc(summary, tag, **options)  # type: ignore[attr-defined]
        return function

    return mark


def documented(endpoint: Any) -> Doc | None:
    return getattr(endpoint, "__openapi__", None)


def build(routes: list[BaseRoute], version: str) -> dict[str, Any]:
    docs = [d for r in routes if isinstance(r, Route) and (d := documented(r.endpoint))]
    types = sorted(
        {t for d in docs for t in (d.body, d.answer) if t is not None} | {Error}, key=str
    )
    (schemas, components) = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    refs = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or (d := documented(route.endpoint)) is None:
            continue
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            paths.setdefault(route.path, {})[method.lower()] = _operation(route, method, d, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "WhatsApp Multi-Instance API", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }


def _operation(route: Route, method: str, d: Doc, refs: dict[type, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', route.path.lower()).strip('_')}",
        "summary": d.summary,
        "description": (route.endpoint.__doc__ or d.summary).strip(),
        "tags": [d.tag],
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in route.param_convertors
        ]
        + [
            {
                "name": q,
                "in": "query",
                "required": False,
                "schema": param.schema,
                "description": param.description,
            }
            for q, p in d.query.items()
            for param in [p if isinstance(p, Param) else Param(p)]
        ],
        "responses": _responses(d, refs),
    }
    if d.auth:
        operation["security"] = [{"bearer": []}, {"apiKey": []}]
    else:
        operation["security"] = []
    if d.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[d.body]}},
        }
    elif d.form is not None:
        properties = {
            k: {"type": "string", **({"format": "binary"} if v == "binary" else {})}
            for k, v in d.form.items()
        }
        operation["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": {"type": "object", "properties": properties}},
            },
        }
    return operation


def _responses(d: Doc, refs: dict[Any, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if d.answer is not None:
        content["application/json"] = {"schema": refs[d.answer]}
    for media_type, kind in d.media.items():
        schema = {"type": "string", **({"format": "binary"} if kind == "binary" else {})}
        content[media_type] = {"schema": schema}
    if not content:
        raise ValueError(f"'{d.summary}' documents neither an answer type nor a media type")
    answers: dict[str, Any] = {
        str(status): {"description": STATUS_TEXT[status], "content": content}
        for status in (d.ok, *d.also)
    }
    errors = {400, 404, 409, 413, 503, *d.errors}
    if d.auth:
        errors |= {401, 403}
    for status in sorted(errors - {d.ok, *d.also}):
        answers[str(status)] = {
            "description": STATUS_TEXT[status],
            "content": {"application/json": {"schema": refs[Error]}},
        }
    return answers


DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>WhatsApp Multi-Instance API</title>
<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .25rem}details{border-bottom:1px solid #ddd;padding:.4rem 0}
.m{display:inline-block;width:4.5rem;font-weight:600}.get{color:#1a7f37}.post{color:#0969da}
.put{color:#9a6700}.delete{color:#cf222e}pre{background:#f6f8fa;padding:.6rem;overflow:auto}</style></head>
<body><h1>WhatsApp Multi-Instance API</h1>
<p>The machine-readable document is <a href="/openapi.json">/openapi.json</a>.</p><div id="ops">Loading…</div>
<script>
fetch('/openapi.json').then(r => r.json()).then(spec => {
  const out = document.getElementById('ops'); out.textContent = '';
  for (const [path, ops] of Object.entries(spec.paths)) for (const [m, op] of Object.entries(ops)) {
    const d = document.createElement('details'), s = document.createElement('summary');
    s.innerHTML = `<span class="m ${m}">${m.toUpperCase()}</span><code></code> `;
    s.querySelector('code').textContent = path; s.append(op.summary);
    const pre = document.createElement('pre');
    pre.textContent = JSON.stringify({parameters: op.parameters, requestBody: op.requestBody,
      responses: Object.keys(op.responses)}, null, 2);
    d.append(s, pre); out.append(d);
  }
});
</script></body></html>"""
