"""python -m requestor_svc: run the requestor service until SIGTERM or SIGINT."""

from requestor_svc.config import ENV_PREFIX, RequestorConfig
from requestor_svc.service import serve
from service_runtime.server import run_service

if __name__ == "__main__":
    run_service(
        RequestorConfig,
        env_prefix=ENV_PREFIX,
        description="quoteflow requestor service",
        serve=serve,
        prog="python -m requestor_svc",
    )
