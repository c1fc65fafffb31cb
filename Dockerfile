# syntax=docker/dockerfile:1
# One image for the three quoteflow services and the console; the command chooses which.
# Secure by default: every process listens on 0.0.0.0 here, so it refuses to start
# without TLS and authentication (*_TLS_CERT_FILE, *_TLS_KEY_FILE and
# *_AUTH_JWT_KEY_FILE, which the Kubernetes manifests in deploy/ set from Secrets).
# For a quick local try, say so by name with <PREFIX>_INSECURE=true:
#   docker run -e QUOTE_INSECURE=true -p 50051:50051 quoteflow:0.1.0   # quote service
#   docker run -e PROCESSOR_INSECURE=true quoteflow:0.1.0 python -m processor_svc
#   docker run -e REQUESTOR_INSECURE=true quoteflow:0.1.0 python -m requestor_svc
#   docker run -e CONSOLE_INSECURE=true quoteflow:0.1.0 python -m console_svc
# (the last: the console, its page and bridge).
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
COPY console_svc/ console_svc/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .
# The google.rpc error details the console's page decodes, from the
# googleapis-common-protos the wheel depends on (as `make web` takes them).
COPY tools/google_rpc_protos.py tools/
RUN pip install --no-cache-dir --no-deps "googleapis-common-protos>=1.63,<2" \
 && python tools/google_rpc_protos.py /proto

# -- web: the console's page, built by package.json's scripts as `make web` does --
FROM node:22-bookworm-slim AS web
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY buf.yaml buf.gen.web.yaml ./
COPY proto/ proto/
COPY web/ web/
COPY --from=build /proto/ web/build/proto/
RUN npm run --silent web:generate && npm run --silent web:bundle

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
# The page only: its sources and Node stay in the web stage.
COPY --from=web /src/web/dist/ /opt/quoteflow/web/

# A numeric user, so Kubernetes can check runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 quoteflow \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin quoteflow \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/quoteflow

# Inside a container every service listens on every interface, and keeps its
# database in /var/lib/quoteflow (mount a volume there to keep it). Each
# service reads only its own prefix, so one set of variables serves all four.
# No TLS, key or token is set here (none is in the image): on 0.0.0.0 without
# them each refuses to start until given them, or <PREFIX>_INSECURE=true.
ENV QUOTE_HOST=0.0.0.0 \
    PROCESSOR_HOST=0.0.0.0 \
    REQUESTOR_HOST=0.0.0.0 \
    CONSOLE_HOST=0.0.0.0 \
    CONSOLE_STATIC_DIR=/opt/quoteflow/web \
    QUOTE_DATA_DIR=/var/lib/quoteflow \
    PROCESSOR_DATA_DIR=/var/lib/quoteflow \
    REQUESTOR_DATA_DIR=/var/lib/quoteflow

WORKDIR /var/lib/quoteflow
USER 10001:10001
# quote, processor, requestor, console.
EXPOSE 50051 50052 50053 8080
# Python is PID 1 and handles SIGTERM itself (drain, then exit 0); the services
# start no child processes, so no init is needed to reap them.
CMD ["python", "-m", "quote_svc"]
