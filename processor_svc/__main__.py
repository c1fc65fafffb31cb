"""python -m processor_svc: run the processor service until SIGTERM or SIGINT."""

from processor_svc.config import ENV_PREFIX, ProcessorConfig
from processor_svc.service import serve
from service_runtime.config import load_config
from service_runtime.rpc_logging import configure_logging
from service_runtime.server import run


def main() -> None:
    config = load_config(
        ProcessorConfig, env_prefix=ENV_PREFIX, description="quoteflow processor service"
    )
    configure_logging(config.log_level)
    run(lambda: serve(config))


if __name__ == "__main__":
    main()
