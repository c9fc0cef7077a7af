"""Operator CLI: `spooled-backend doctor | orgs | keys | queues | jobs | dlq` (typer).

Every command calls the same service functions as the REST API (no SQL of its own beyond
`doctor`'s probes), prints a table or `--json`, and reaches the database through
`DATABASE_DIRECT_URL` / `DATABASE_URL`, or the embedded PostgreSQL of `SPOOLED_DATA_DIR`
(the running server's, or started for the command and stopped after).
"""
