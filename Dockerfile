# syntax=docker/dockerfile:1
# phems-connector container image.
#   docker build -t phems-connector:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
# Runs as uid/gid 10001 with a read-only root filesystem: the only writable paths are the
# /data volume (PHEMS_DATA_DIR) and /tmp (an emptyDir in Kubernetes).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/phems
ENV PATH=/opt/phems/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY connector ./connector
COPY catalog ./catalog
COPY adapters ./adapters
# EXTRAS=synthetic adds synthetic FHIR patients (SDV, Business Source License; docs/synthetic.md),
# with PyTorch's CPU build installed first (the default build pulls several GB of CUDA):
#   docker build --build-arg EXTRAS=synthetic -t phems-connector:0.1.0-synthetic .
ARG EXTRAS=""
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Byte-compile at build time: the root filesystem is read-only at run time. (DL3013: the
# package installed is this directory, with or without its extra.)
# hadolint ignore=DL3013
RUN if [ -n "${EXTRAS}" ]; then \
        pip install --no-compile --index-url "${TORCH_INDEX}" torch==2.13.0; \
    fi \
    && pip install --no-compile ".${EXTRAS:+[${EXTRAS}]}" \
    && python -m compileall -q -j 0 /opt/phems \
    && phems-connector --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="phems-connector" \
      org.opencontainers.image.description="FHIR-native data space connector for European children's hospitals (DSP 2025-1)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/phems/phems-connector" \
      org.opencontainers.image.documentation="https://github.com/phems/phems-connector/blob/main/docs/install.md" \
      org.opencontainers.image.vendor="PHEMS"
RUN groupadd --system --gid 10001 phems \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin phems \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /opt/phems /opt/phems
ENV PATH=/opt/phems/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PHEMS_DATA_DIR=/data \
    PHEMS_HOST=0.0.0.0 \
    PHEMS_PORT=8080
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["phems-connector"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
