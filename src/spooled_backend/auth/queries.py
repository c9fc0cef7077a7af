"""SQL for JWT sessions and email login (CONTRACT §4.2, §7.2). Bound parameters only."""

from __future__ import annotations

# The key a JWT refers to, re-read on every request (active/expiry/queues/org state are current).
KEY_BY_ID = """
SELECT k.id, k.organization_id, k.queues, k.rate_limit, k.is_active, k.expires_at,
       o.plan_tier, o.custom_limits
FROM api_keys k JOIN organizations o ON o.id = k.organization_id
WHERE k.id = $1
"""

ORG_SUMMARY = """
SELECT id, name, slug, plan_tier, billing_email FROM organizations WHERE id = $1
"""

# ---- email login (table email_login_codes) -------------------------------------------------

LIVE_ORG_BY_EMAIL = """
SELECT id FROM organizations
WHERE lower(billing_email) = $1 AND plan_tier <> 'deleted'
ORDER BY created_at LIMIT 1
"""

EMAIL_EXISTS = """
SELECT EXISTS (SELECT 1 FROM organizations WHERE lower(billing_email) = $1 AND plan_tier <> 'deleted')
"""

# Serialises code issuing and guessing per address (transaction-scoped advisory lock).
LOCK_EMAIL = "SELECT pg_advisory_xact_lock(hashtext('spooled:email:' || $1))"

CODES_SENT_LAST_HOUR = """
SELECT count(*) FROM email_login_codes
WHERE email = $1 AND code NOT LIKE 'signup:%' AND created_at > now() - interval '1 hour'
"""

OLDEST_CODE_LAST_HOUR = """
SELECT min(created_at) FROM email_login_codes
WHERE email = $1 AND code NOT LIKE 'signup:%' AND created_at > now() - interval '1 hour'
"""

INSERT_CODE = """
INSERT INTO email_login_codes (email, code, organization_id, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
RETURNING id
"""

# Every guess counts against every live code of the address (≤5 attempts per code, atomic).
SPEND_ATTEMPT = """
UPDATE email_login_codes SET attempts = attempts + 1
WHERE email = $1 AND used_at IS NULL AND expires_at > now() AND code NOT LIKE 'signup:%'
RETURNING id, code, organization_id, attempts
"""

MARK_USED = "UPDATE email_login_codes SET used_at = now() WHERE id = $1 AND used_at IS NULL RETURNING id"

RECORD_GUESS = "INSERT INTO email_login_guesses (email) VALUES ($1)"

GUESSES_LAST_10_MIN = """
SELECT count(*) FROM email_login_guesses WHERE email = $1 AND created_at > now() - interval '10 minutes'
"""

PRUNE_GUESSES = """
DELETE FROM email_login_guesses WHERE email = $1 AND created_at <= now() - interval '10 minutes'
"""

# Signup tokens are rows whose code is `signup:<hmac>`; consumed once.
FIND_SIGNUP_TOKEN = """
SELECT id, email FROM email_login_codes
WHERE code = $1 AND used_at IS NULL AND expires_at > now()
FOR UPDATE
"""

# The key an email login binds its tokens to: the oldest usable unrestricted key, else any usable.
LOGIN_KEY_FOR_ORG = """
SELECT id, queues FROM api_keys
WHERE organization_id = $1 AND is_active AND (expires_at IS NULL OR expires_at > now())
ORDER BY (cardinality(queues) = 0 OR '*' = ANY(queues)) DESC, created_at
LIMIT 1
"""
