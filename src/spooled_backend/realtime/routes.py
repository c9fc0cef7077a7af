"""Realtime REST doors: WebSocket `/api/v1/ws` and SSE `/api/v1/events…` (CONTRACT §14; to be filled)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["realtime"])
