"""Organization SQL."""

from __future__ import annotations

ORG_COLUMNS = """
    id, name, slug, plan_tier, billing_email, settings, custom_limits, stripe_customer_id,
    stripe_subscription_id, stripe_subscription_status, stripe_current_period_end,
    stripe_cancel_at_period_end, created_at, updated_at
"""

INSERT_ORG = f"""
INSERT INTO organizations (name, slug, plan_tier, billing_email, settings, custom_limits)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {ORG_COLUMNS}
"""

SLUG_TAKEN = "SELECT EXISTS (SELECT 1 FROM organizations WHERE slug = $1)"

EMAIL_TAKEN = """
SELECT EXISTS (SELECT 1 FROM organizations
               WHERE lower(billing_email) = lower($1) AND plan_tier <> 'deleted')
"""

COUNT_ORGS = "SELECT count(*) FROM organizations"

GET_ORG = f"SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"

GET_LIVE_ORG = f"SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1 AND plan_tier <> 'deleted'"

LOCK_ORG = f"SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1 FOR UPDATE"

EMAIL_TAKEN_BY_OTHER = """
SELECT EXISTS (SELECT 1 FROM organizations
               WHERE lower(billing_email) = lower($1) AND plan_tier <> 'deleted' AND id <> $2)
"""

# PUT /organizations/{id}: $3/$5/$7 say whether name/billing_email/settings are being set.
UPDATE_ORG = f"""
UPDATE organizations SET
    name = CASE WHEN $2 THEN $3 ELSE name END,
    billing_email = CASE WHEN $4 THEN $5 ELSE billing_email END,
    settings = CASE WHEN $6 THEN $7::jsonb ELSE settings END,
    updated_at = now()
WHERE id = $1
RETURNING {ORG_COLUMNS}
"""

ACTIVE_RESOURCES = """
SELECT
    (SELECT count(*) FROM jobs WHERE organization_id = $1
        AND status IN ('pending', 'scheduled', 'processing')) AS active_jobs,
    (SELECT count(*) FROM workers WHERE organization_id = $1
        AND status IN ('healthy', 'degraded', 'draining')) AS active_workers,
    (SELECT count(*) FROM schedules WHERE organization_id = $1 AND is_active) AS active_schedules
"""

SOFT_DELETE_ORG = """
UPDATE organizations SET plan_tier = 'deleted', updated_at = now() WHERE id = $1
"""

LIST_MEMBER_KEYS = """
SELECT id, name, queues, created_at FROM api_keys
WHERE organization_id = $1 AND is_active AND (expires_at IS NULL OR expires_at > now())
ORDER BY created_at ASC, id ASC
LIMIT 100
"""

# CONTRACT §21 R3: removes the ingest token (custom incoming webhooks refused until regenerated).
CLEAR_WEBHOOK_TOKEN = """
UPDATE organizations
SET settings = CASE WHEN jsonb_typeof(settings) = 'object' THEN settings - 'webhook_token'
                    ELSE '{}'::jsonb END,
    updated_at = now()
WHERE id = $1 AND plan_tier <> 'deleted'
RETURNING id
"""

SET_WEBHOOK_TOKEN = """
UPDATE organizations
SET settings = jsonb_set(CASE WHEN jsonb_typeof(settings) = 'object' THEN settings
                              ELSE '{}'::jsonb END,
                         '{webhook_token}', to_jsonb($2::text)),
    updated_at = now()
WHERE id = $1 AND plan_tier <> 'deleted'
RETURNING id
"""
