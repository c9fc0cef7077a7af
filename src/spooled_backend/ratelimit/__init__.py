"""Rate limiting (CONTRACT §12.4): rules, the Redis/in-process limiter, the per-IP middleware
and the per-organization/API-key check used by authentication."""
