"""The durable core: a store that owns the queue (jobs, claims under leases,
fenced outcomes), and the rules every store applies alike."""
