"""API key SQL (CONTRACT §7.5, §18 `api_keys`). Every statement is scoped by organization."""

from __future__ import annotations

KEY_COLUMNS = """
    id, organization_id, name, key_prefix, queues, rate_limit, is_active, created_at,
    last_used, expires_at
"""

INSERT_API_KEY = f"""
INSERT INTO api_keys (organization_id, key_hash, key_prefix, lookup_hash, name, queues,
                      rate_limit, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING {KEY_COLUMNS}
"""

LIST_API_KEYS = f"""
SELECT {KEY_COLUMNS} FROM api_keys
WHERE organization_id = $1
ORDER BY created_at DESC, id DESC
LIMIT 100
"""

GET_API_KEY = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND organization_id = $2"

LOCK_API_KEY = f"""
SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND organization_id = $2 FOR UPDATE
"""

# Three-state update: $3..$7 are only applied when their "set" flag is true.
UPDATE_API_KEY = f"""
UPDATE api_keys SET
    name = CASE WHEN $3 THEN $4 ELSE name END,
    queues = CASE WHEN $5 THEN $6::text[] ELSE queues END,
    rate_limit = CASE WHEN $7 THEN $8 ELSE rate_limit END,
    is_active = CASE WHEN $9 THEN $10 ELSE is_active END,
    expires_at = CASE WHEN $11 THEN $12 ELSE expires_at END
WHERE id = $1 AND organization_id = $2
RETURNING {KEY_COLUMNS}
"""

REVOKE_API_KEY = """
UPDATE api_keys SET is_active = false WHERE id = $1 AND organization_id = $2 RETURNING id
"""

DEACTIVATE_ORG_KEYS = """
UPDATE api_keys SET is_active = false WHERE organization_id = $1 AND is_active RETURNING id
"""
