"""Webhook SQL: outgoing subscriptions, the delivery outbox and its claim, the inbound log.

The outbox rows themselves are written by the triggers of migration 0007 (in the transaction
of the change); this module claims, records and lists them. The claim is one statement:
`FOR UPDATE SKIP LOCKED` over `outgoing_webhook_deliveries_due_idx` feeding an UPDATE that
pushes `next_attempt_at` out by the claim lease, counts the attempt and sets a fresh
`claim_token`; the result of the attempt is recorded only while that token still holds.
"""

from __future__ import annotations

HOOK_COLUMNS = """
    id, organization_id, name, url, events, format, enabled, failure_count, last_triggered_at,
    last_status, created_at, updated_at
"""

LIST_HOOKS = f"""
SELECT {HOOK_COLUMNS} FROM outgoing_webhooks WHERE organization_id = $1
ORDER BY created_at DESC, id LIMIT 500
"""

GET_HOOK = f"SELECT {HOOK_COLUMNS} FROM outgoing_webhooks WHERE id = $1 AND organization_id = $2"

GET_HOOK_FOR_SEND = """
SELECT id, organization_id, url, secret, format, enabled FROM outgoing_webhooks
WHERE id = $1 AND organization_id = $2
"""

# $1 org, $2 name, $3 url, $4 events, $5 secret, $6 enabled, $7 format
INSERT_HOOK = f"""
INSERT INTO outgoing_webhooks (organization_id, name, url, events, secret, enabled, format)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING {HOOK_COLUMNS}
"""

LOCK_HOOK = """
SELECT enabled FROM outgoing_webhooks WHERE id = $1 AND organization_id = $2 FOR UPDATE
"""

# $3 name, $4 url, $5 events, $6 enabled, $7 format (NULL = keep), $8 set secret?, $9 secret.
# Enabling a disabled hook starts its failure count afresh (it was the reason it was off).
UPDATE_HOOK = f"""
UPDATE outgoing_webhooks SET
    name = COALESCE($3, name), url = COALESCE($4, url), events = COALESCE($5, events),
    failure_count = CASE WHEN $6::bool AND NOT enabled THEN 0 ELSE failure_count END,
    enabled = COALESCE($6, enabled), format = COALESCE($7, format),
    secret = CASE WHEN $8::bool THEN $9 ELSE secret END,
    updated_at = now()
WHERE id = $1 AND organization_id = $2
RETURNING {HOOK_COLUMNS}
"""

DELETE_HOOK = "DELETE FROM outgoing_webhooks WHERE id = $1 AND organization_id = $2 RETURNING id"

DELIVERY_COLUMNS = """
    id, webhook_id, event, payload, status, status_code, response_body, error, attempts,
    created_at, delivered_at
"""

# $1 webhook, $2 org, $3 status (NULL = all), $4 limit, $5 offset
LIST_DELIVERIES = f"""
SELECT {DELIVERY_COLUMNS} FROM outgoing_webhook_deliveries
WHERE organization_id = $2 AND webhook_id = $1 AND ($3::text IS NULL OR status = $3)
ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5
"""

# ---- delivery loop --------------------------------------------------------------------------

_SEND_COLUMNS = """
    c.id, c.organization_id, c.webhook_id, c.kind, c.job_id, c.event, c.payload, c.status,
    c.attempts, c.claim_token, c.target_url, c.target_secret,
    w.url AS hook_url, w.secret AS hook_secret, w.format AS hook_format,
    w.enabled AS hook_enabled
"""

# $1 batch size, $2 claim lease seconds
CLAIM_DUE = f"""
WITH picked AS (
    SELECT id FROM outgoing_webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), c AS (
    UPDATE outgoing_webhook_deliveries d SET
        attempts = d.attempts + 1, claim_token = gen_random_uuid()::text,
        next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
    WHERE d.id = ANY (ARRAY(SELECT id FROM picked))
    RETURNING d.*
)
SELECT {_SEND_COLUMNS}
FROM c LEFT JOIN outgoing_webhooks w ON w.id = c.webhook_id
"""

# Manual retry (CONTRACT §7.12): the delivery of this hook, row-locked for the send unless the
# loop holds it right now. $1 delivery, $2 webhook, $3 org, $4 claim lease seconds,
# $5 attempt cap of manual retries.
CLAIM_ONE = f"""
WITH picked AS (
    SELECT id FROM outgoing_webhook_deliveries
    WHERE id = $1 AND webhook_id = $2 AND organization_id = $3
      AND status <> 'success' AND attempts < $5
      AND NOT (status = 'pending' AND claim_token IS NOT NULL AND next_attempt_at > now())
    FOR UPDATE SKIP LOCKED
), c AS (
    UPDATE outgoing_webhook_deliveries d SET
        attempts = d.attempts + 1, claim_token = gen_random_uuid()::text,
        next_attempt_at = CASE WHEN d.status = 'pending'
                               THEN now() + make_interval(secs => $4) END,
        updated_at = now()
    WHERE d.id = (SELECT id FROM picked)
    RETURNING d.*
)
SELECT {_SEND_COLUMNS}
FROM c LEFT JOIN outgoing_webhooks w ON w.id = c.webhook_id
"""

GET_DELIVERY_STATE = """
SELECT status, attempts, claim_token, next_attempt_at FROM outgoing_webhook_deliveries
WHERE id = $1 AND webhook_id = $2 AND organization_id = $3
"""

# Record one attempt. $1 id, $2 claim token, $3 new status, $4 status code, $5 response body,
# $6 error, $7 retry delay seconds (for 'pending'), $8 success, $9 delivery finished failed
# (counts toward auto-disable), $10 auto-disable threshold.
# The hook's `last_triggered_at`/`last_status` follow every attempt; `failure_count` +1 per
# failed delivery, 0 on any success; at the threshold the hook turns itself off.
RECORD_ATTEMPT = """
WITH d AS (
    UPDATE outgoing_webhook_deliveries SET
        status = $3, status_code = $4, response_body = $5, error = $6,
        delivered_at = CASE WHEN $8 THEN now() ELSE delivered_at END,
        next_attempt_at = CASE WHEN $3 = 'pending' THEN now() + make_interval(secs => $7) END,
        claim_token = NULL, updated_at = now()
    WHERE id = $1 AND claim_token = $2
    RETURNING webhook_id
), w AS (
    UPDATE outgoing_webhooks h SET
        last_triggered_at = now(),
        failure_count = CASE WHEN $8 THEN 0 WHEN $9 THEN h.failure_count + 1
                             ELSE h.failure_count END,
        enabled = CASE WHEN NOT $8 AND $9 AND h.failure_count + 1 >= $10 THEN false
                       ELSE h.enabled END,
        last_status = CASE WHEN $8 THEN 'success'
                           WHEN $9 AND h.failure_count + 1 >= $10 THEN 'auto_disabled'
                           ELSE 'failed' END,
        updated_at = now()
    FROM d WHERE h.id = d.webhook_id
    RETURNING h.enabled
)
SELECT EXISTS (SELECT 1 FROM d) AS recorded, (SELECT enabled FROM w) AS hook_enabled
"""

# A delivery whose hook was disabled (or whose target is refused) ends without an attempt.
# $1 id, $2 claim token, $3 error
ABANDON = """
UPDATE outgoing_webhook_deliveries SET
    status = 'failed', error = $3, attempts = GREATEST(attempts - 1, 0), next_attempt_at = NULL,
    claim_token = NULL, updated_at = now()
WHERE id = $1 AND claim_token = $2
"""

NEXT_DUE = """
SELECT min(next_attempt_at) FROM outgoing_webhook_deliveries WHERE status = 'pending'
"""

# ---- inbound ---------------------------------------------------------------------------------

ORG_FOR_INGEST = """
SELECT id, plan_tier, custom_limits, settings ->> 'webhook_token' AS webhook_token
FROM organizations WHERE id = $1 AND plan_tier <> 'deleted'
"""

INGEST_SECRET = """
SELECT secret FROM incoming_webhook_secrets WHERE organization_id = $1 AND provider = $2
"""

# $1 org, $2 provider, $3 event_type, $4 matched queue, $5 job id, $6 status, $7 error,
# $8 provider delivery id, $9 signature header (kept for audit, never returned)
INSERT_INBOUND = """
INSERT INTO webhook_deliveries (organization_id, provider, event_type, matched_queue, job_id,
                                status, error, delivery_id, signature)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id
"""

JOB_STATE = "SELECT queue_name, status FROM jobs WHERE id = $1 AND organization_id = $2"

SET_JOB_SOURCE = "SELECT set_config('spooled.job_source', $1, true)"

# $1 org, $2 status, $3 since, $4 queue, $5 limit, $6 offset
LIST_INBOUND = """
SELECT id, provider, COALESCE(event_type, '') AS event_type, matched_queue, job_id, status,
       error, created_at
FROM webhook_deliveries
WHERE organization_id = $1 AND ($2::text IS NULL OR status = $2)
  AND ($3::timestamptz IS NULL OR created_at >= $3)
  AND ($4::text IS NULL OR matched_queue = $4)
ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6
"""

LIST_SECRETS = """
SELECT provider, created_at, updated_at FROM incoming_webhook_secrets
WHERE organization_id = $1 ORDER BY provider
"""

UPSERT_SECRET = """
INSERT INTO incoming_webhook_secrets (organization_id, provider, secret) VALUES ($1, $2, $3)
ON CONFLICT (organization_id, provider) DO UPDATE SET secret = EXCLUDED.secret, updated_at = now()
RETURNING provider, created_at, updated_at
"""

DELETE_SECRET = """
DELETE FROM incoming_webhook_secrets WHERE organization_id = $1 AND provider = $2
RETURNING provider
"""
