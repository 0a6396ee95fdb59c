"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from hubbub.core.grants import Identity
from hubbub.engine.hub import Hub
from hubbub.server.auth import Auth
from hubbub.server.metrics import Metrics
from hubbub.server.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", Hub)
METRICS = web.AppKey("metrics", Metrics)
AUTH = web.AppKey("auth", Auth)

AUTHORIZED = web.RequestKey("hubbub.authorized", Identity)
"""The request's `Identity` as an embedding app's `authorize` decided it (`mount`)."""
