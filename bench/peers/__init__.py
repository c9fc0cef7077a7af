"""Peer queues driven the way their documentation recommends for throughput; one process per
peer, spec as JSON in argv[1], one `RESULT {json}` line per task on stdout."""
