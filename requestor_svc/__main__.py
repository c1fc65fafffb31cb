"""python -m requestor_svc: run the requestor service until SIGTERM or SIGINT."""

from requestor_svc.config import ENV_PREFIX, RequestorConfig
from requestor_svc.service import serve
from service_runtime.config import load_config
from service_runtime.rpc_logging import configure_logging
from service_runtime.server import run


def main() -> None:
    config = load_config(
        RequestorConfig, env_prefix=ENV_PREFIX, description="quoteflow requestor service"
    )
    configure_logging(config.log_level)
    run(lambda: serve(config))


if __name__ == "__main__":
    main()
