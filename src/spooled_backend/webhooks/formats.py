"""Delivery bodies per `format` (CONTRACT §10.2): `json` is the envelope itself; `slack`,
`discord` and `teams` render it as the message each service's incoming-webhook URL accepts
(Slack `{text, blocks}`, Discord `{content, embeds}`, Teams MessageCard). The layout is ours;
the SDK only names the formats."""

from __future__ import annotations

import json
from typing import Any

_FIELD_ORDER = ("job_id", "queue_name", "status", "worker_id", "schedule_id", "workflow_id",
                "name", "error", "reason", "hostname", "old_status")


def _facts(data: Any) -> list[tuple[str, str]]:
    if not isinstance(data, dict):
        return []
    keys = [k for k in _FIELD_ORDER if k in data] + sorted(k for k in data if k not in _FIELD_ORDER)
    out: list[tuple[str, str]] = []
    for key in keys:
        value = data[key]
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        out.append((key, text[:500]))
    return out[:10]


def _summary(envelope: dict[str, Any]) -> str:
    data = envelope.get("data") or {}
    subject = ""
    if isinstance(data, dict):
        subject = str(data.get("job_id") or data.get("workflow_id") or data.get("worker_id")
                      or data.get("schedule_id") or data.get("queue_name") or "")
    event = envelope.get("event", "event")
    return f"Spooled: {event}" + (f" ({subject})" if subject else "")


def render(fmt: str, envelope: dict[str, Any]) -> dict[str, Any]:
    """The JSON document sent for `envelope` in format `fmt`."""
    if fmt == "slack":
        facts = _facts(envelope.get("data"))
        text = _summary(envelope)
        lines = "\n".join(f"*{k}*: {v}" for k, v in facts)
        return {
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
                *([{"type": "section", "text": {"type": "mrkdwn", "text": lines}}] if lines else []),
            ],
        }
    if fmt == "discord":
        return {
            "content": _summary(envelope),
            "embeds": [{
                "title": str(envelope.get("event")),
                "timestamp": envelope.get("created_at"),
                "fields": [{"name": k, "value": v, "inline": True}
                           for k, v in _facts(envelope.get("data"))],
            }],
        }
    if fmt == "teams":
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": _summary(envelope),
            "title": _summary(envelope),
            "sections": [{"facts": [{"name": k, "value": v}
                                    for k, v in _facts(envelope.get("data"))]}],
        }
    return envelope
