"""Prometheus metrics of every quoteflow process, on prometheus-client:
RPCs under go-grpc-prometheus's names (rpc), the queues (queue), the task
pool and order logs (pools), the store's commits (store), served on
/metrics (endpoint)."""
