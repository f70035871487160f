"""The HTTP surface: routes, middleware, SSE framing, the OpenAPI schema.

Starlette is imported here and in the composition root (`api.app`) only.
"""
