"""python -m quote_svc: run the quote service until SIGTERM or SIGINT."""

from quote_svc.config import ENV_PREFIX, QuoteConfig
from quote_svc.service import serve
from service_runtime.server import run_service

if __name__ == "__main__":
    run_service(
        QuoteConfig,
        env_prefix=ENV_PREFIX,
        description="quoteflow quote service",
        serve=serve,
        prog="python -m quote_svc",
    )
