"""The console script: `quoteflow …` (or `python -m quoteflow_cli …`)."""

import asyncio
import sys

# Ctrl-C: 128 + SIGINT, as a shell reports a process the signal ended. Not in
# exit_codes.ExitCode, since importing that loads grpc, which main() defers.
_INTERRUPTED = 130


def main() -> int:
    try:
        # Imported here, inside the try: loading grpc and rich takes a moment, and
        # a Ctrl-C meanwhile must end the command as quietly as one later on.
        from quoteflow_cli.app import run

        return asyncio.run(run())
    except KeyboardInterrupt:
        # Ctrl-C is the person's own doing: no traceback, no message.
        return _INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
