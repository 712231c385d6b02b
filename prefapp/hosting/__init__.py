"""Hosting: who may do what (`auth`: accounts, roles, Hub sign-in), where the app runs and what that
implies (`environment`: the public-bind guard, Space storage, token redaction) and user-typed paths (`paths`).

May import: `config` only.
"""
