"""python -m quote_svc: run the quote service until SIGTERM or SIGINT."""

from quote_svc.config import ENV_PREFIX, QuoteConfig
from quote_svc.service import serve
from service_runtime.config import load_config
from service_runtime.rpc_logging import configure_logging
from service_runtime.server import run


def main() -> None:
    config = load_config(QuoteConfig, env_prefix=ENV_PREFIX, description="quoteflow quote service")
    configure_logging(config.log_level)
    run(lambda: serve(config))


if __name__ == "__main__":
    main()
