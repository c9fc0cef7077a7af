"""Webhooks REST routes: parse, call the service, shape the answer (to be filled)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["webhooks"])
