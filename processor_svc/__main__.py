"""python -m processor_svc: run the processor service until SIGTERM or SIGINT."""

from processor_svc.config import ENV_PREFIX, ProcessorConfig
from processor_svc.service import serve
from service_runtime.server import run_service

if __name__ == "__main__":
    run_service(
        ProcessorConfig,
        env_prefix=ENV_PREFIX,
        description="quoteflow processor service",
        serve=serve,
        prog="python -m processor_svc",
    )
