"""OpenAPI path items generated from routes' `@documented` annotations.

The request body schema is the msgspec Struct that validates it, and the success
body the Struct named as `response`, so the document cannot drift from the code.
`api/http/openapi.py` merges these paths and schemas into its document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Route

from api.http.contract import doc_of

Schema = dict[str, Any]
REF = "#/components/schemas/{name}"
PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def documented_paths(
    routes: Sequence[BaseRoute], errors: Schema
) -> tuple[dict[str, dict[str, Schema]], dict[str, Schema]]:
    """(paths, component schemas) for every documented route in `routes`."""
    docs = []
    for route in routes:
        if isinstance(route, Route) and (doc := doc_of(route.endpoint)) is not None:
            docs.append((route, doc))
    models = list(dict.fromkeys(m for _, d in docs for m in (d.body, d.response) if m is not None))
    refs, components = msgspec.json.schema_components(models, ref_template=REF)
    ref_of = dict(zip(models, refs, strict=True))
    paths: dict[str, dict[str, Schema]] = {}
    for route, doc in docs:
        path = PATH_PARAM.sub(r"{\1}", route.path)
        success = ref_of[doc.response] if doc.response is not None else {"type": "object"}
        responses = {str(doc.status): _json(success)}
        if doc.status == 201:  # created, or the same thing again (update, retry)
            responses["200"] = _json(success)
        operation: Schema = {"summary": doc.summary, "responses": {**responses, **errors}}
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in PATH_PARAM.findall(route.path)
        ]
        for name, kind in doc.query.items():
            (schema,), _ = msgspec.json.schema_components([kind], ref_template=REF)
            params.append({"name": name, "in": "query", "required": False, "schema": schema})
        if params:
            operation["parameters"] = params
        if doc.body is not None:
            operation["requestBody"] = {
                "required": doc.body_required,
                "content": {"application/json": {"schema": ref_of[doc.body]}},
            }
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                paths.setdefault(path, {})[method.lower()] = operation
    return paths, components
