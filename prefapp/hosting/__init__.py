"""Hosting: who may do what (`auth`: accounts, roles, Hub sign-in; `login`: the password check off the event loop,
rate-limited; `callers`: who and where a request comes from, X-Forwarded-For only from trusted proxies), the web
server's own doors (`routes`: Hub sign-in closes gradio's routes, upload limits; `light_api`: labelling in one
plain HTTP request, beside gradio's queue, with the same roles), where the app runs and what that implies
(`environment`: the public-bind guard, Space storage, token redaction), user-typed paths (`paths`) and keeping the
store safe over time (`durability`: checkpoints, rotating backups, clean stops on SIGTERM, restore).

May import: `config`, `errors`; `durability` also the store. Never gradio (starlette/fastapi are fine).
"""
