"""The developer's tools: `make run`'s supervisor, the durability check, code and
docs generation, and the process launcher that the tests and the bench share.

A package so that tools.launcher imports by one name everywhere: in the tests
(the repo root is on pytest's pythonpath), in the bench and in `python -m
tools.<tool>`, without pytest. The scripts here still run as `python tools/X.py`.
"""
