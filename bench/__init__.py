"""`make bench`: quoteflow measured against a bare grpc.aio ceiling and a job-queue peer.

Run from the repository root as `python -m bench` (or `python -m bench --smoke`
for a seconds-long run at tiny sizes). It writes bench/results.json and
docs/benchmarks.md; see docs/benchmarks.md for the method.
"""
