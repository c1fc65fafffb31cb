"""python -m console_svc: serve the console until SIGTERM or SIGINT."""

from console_svc.config import ENV_PREFIX, ConsoleConfig
from console_svc.service import serve
from service_runtime.server import run_service

if __name__ == "__main__":
    run_service(
        ConsoleConfig,
        env_prefix=ENV_PREFIX,
        description="quoteflow console",
        serve=serve,
        prog="python -m console_svc",
    )
