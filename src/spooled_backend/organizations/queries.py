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

INSERT_API_KEY = """
INSERT INTO api_keys (organization_id, key_hash, key_prefix, lookup_hash, name, queues,
                      rate_limit, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id, organization_id, name, key_prefix, queues, rate_limit, is_active, created_at,
          last_used, expires_at
"""

COUNT_ORGS = "SELECT count(*) FROM organizations"

GET_ORG = f"SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"
