# syntax=docker/dockerfile:1
# One image for the three quoteflow services; the command chooses which:
#   docker run quoteflow:0.1.0                              # the quote service
#   docker run quoteflow:0.1.0 python -m processor_svc      # the processor
#   docker run quoteflow:0.1.0 python -m requestor_svc      # the requestor
# Build: docker build -t quoteflow:0.1.0 .

# -- build: the project's wheel, from the sources pyproject.toml packages --------
FROM python:3.11-slim AS build
WORKDIR /src
# README.md is the package's long description (pyproject's readme).
COPY pyproject.toml README.md ./
# gen/ holds the generated code, packaged as the top-level `quoteflow` package.
COPY gen/ gen/
COPY queues/ queues/
COPY service_runtime/ service_runtime/
COPY quote_svc/ quote_svc/
COPY processor_svc/ processor_svc/
COPY requestor_svc/ requestor_svc/
COPY quoteflow_cli/ quoteflow_cli/
# The console's bridge is packaged with the rest; its page (web/dist, built by
# `make web` with Node) is not in this image, so here it serves the bridge only.
COPY console_svc/ console_svc/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# -- run: the wheel and its dependencies, and nothing else ------------------------
FROM python:3.11-slim
# The root filesystem is read-only in Kubernetes: Python writes no .pyc files
# (pip compiled them when it installed the wheel).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels/ /tmp/wheels/
RUN pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels

# A numeric user, so Kubernetes can check runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 quoteflow \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin quoteflow \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/quoteflow

# Inside a container every service listens on every interface, and keeps its
# database in /var/lib/quoteflow (mount a volume there to keep it). Each
# service reads only its own prefix, so one set of variables serves all three.
ENV QUOTE_HOST=0.0.0.0 \
    PROCESSOR_HOST=0.0.0.0 \
    REQUESTOR_HOST=0.0.0.0 \
    QUOTE_DATA_DIR=/var/lib/quoteflow \
    PROCESSOR_DATA_DIR=/var/lib/quoteflow \
    REQUESTOR_DATA_DIR=/var/lib/quoteflow

WORKDIR /var/lib/quoteflow
USER 10001:10001
# quote, processor, requestor.
EXPOSE 50051 50052 50053
# Python is PID 1 and handles SIGTERM itself (drain, then exit 0); the services
# start no child processes, so no init is needed to reap them.
CMD ["python", "-m", "quote_svc"]
