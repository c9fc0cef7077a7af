"""Billing SQL (CONTRACT §7.4, §18 `organizations` stripe_* columns, `processed_stripe_events`)."""

from __future__ import annotations

BILLING_STATUS = """
SELECT plan_tier, stripe_customer_id, stripe_subscription_id, stripe_subscription_status,
       stripe_current_period_end, stripe_cancel_at_period_end
FROM organizations WHERE id = $1 AND plan_tier <> 'deleted'
"""

# Claim an event: new row, or take over a `processing` claim older than $2 seconds.
CLAIM_EVENT = """
INSERT INTO processed_stripe_events (event_id, status, claimed_at) VALUES ($1, 'processing', now())
ON CONFLICT (event_id) DO UPDATE SET claimed_at = now()
WHERE processed_stripe_events.status = 'processing'
  AND processed_stripe_events.claimed_at < now() - make_interval(secs => $2)
RETURNING event_id
"""

EVENT_STATUS = "SELECT status FROM processed_stripe_events WHERE event_id = $1"

FINISH_EVENT = "UPDATE processed_stripe_events SET status = 'done' WHERE event_id = $1"

RELEASE_EVENT = "DELETE FROM processed_stripe_events WHERE event_id = $1 AND status = 'processing'"

# checkout.session.completed: link the customer (and subscription) to the org.
LINK_CUSTOMER = """
UPDATE organizations SET
    stripe_customer_id = $2,
    stripe_subscription_id = COALESCE($3, stripe_subscription_id),
    updated_at = now()
WHERE id = $1 AND plan_tier <> 'deleted'
RETURNING id
"""

# customer.subscription.*: $1 customer, $2 subscription id, $3 status, $4 period end,
# $5 cancel_at_period_end, $6 new plan tier (NULL = keep), $7 event created.
# Guarded so an older event never overwrites a newer one.
APPLY_SUBSCRIPTION = """
UPDATE organizations SET
    stripe_subscription_id = $2,
    stripe_subscription_status = $3,
    stripe_current_period_end = $4,
    stripe_cancel_at_period_end = $5,
    plan_tier = COALESCE($6, plan_tier),
    stripe_last_event_at = $7,
    updated_at = now()
WHERE stripe_customer_id = $1 AND plan_tier <> 'deleted'
  AND (stripe_last_event_at IS NULL OR stripe_last_event_at <= $7)
RETURNING id, plan_tier
"""

# invoice.paid / invoice.payment_failed: $1 customer, $2 subscription, $3 from statuses,
# $4 new status, $5 event created.
APPLY_INVOICE = """
UPDATE organizations SET stripe_subscription_status = $4, stripe_last_event_at = $5,
       updated_at = now()
WHERE stripe_customer_id = $1 AND plan_tier <> 'deleted'
  AND ($2::text IS NULL OR stripe_subscription_id = $2)
  AND stripe_subscription_status = ANY($3::text[])
  AND (stripe_last_event_at IS NULL OR stripe_last_event_at <= $5)
RETURNING id
"""
