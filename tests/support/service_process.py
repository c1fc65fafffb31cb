"""The tests' way to run real processes: tools.launcher, the one launcher the
tools and the bench use too. running_service starts a service as `make run`
does and reads its log; launch starts any command (service_argv: a service's,
to wait for other than its serving); run_to_exit runs a command to its end."""

from tools.launcher import (
    Finished,
    Launched,
    LaunchError,
    launch,
    python_env,
    run_to_exit,
    running_service,
    service_argv,
)

__all__ = [
    "Finished",
    "LaunchError",
    "Launched",
    "launch",
    "python_env",
    "run_to_exit",
    "running_service",
    "service_argv",
]
