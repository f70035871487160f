"""The application core: sessions, scheduler, node liveness, clock, settings, agent folders.

Nothing here imports Starlette; the HTTP surface lives in `api.http`.
"""
