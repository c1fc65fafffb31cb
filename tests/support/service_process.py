"""The tests' way to run real processes: tools.launcher, the one launcher the
tools and the bench use too. running_service starts a service as `make run`
does and reads its log; run_to_exit runs a command to its end."""

from tools.launcher import Finished, Launched, LaunchError, run_to_exit, running_service

__all__ = ["Finished", "LaunchError", "Launched", "run_to_exit", "running_service"]
