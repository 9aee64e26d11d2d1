# One recipe for the seven service images (docs/deploy/images.md):
#   docker build --build-arg SERVICE=memory --build-arg PORT=8001 -t rae-memory .
# SERVICE: gateway | memory | ml | graph | reflection | cost | events; PORT: its default listen port
# (8000..8006, RAE_PORT; the chart sets its own). The release path passes BASE_IMAGE pinned by
# digest (python:3.11-slim@sha256:...), so a rebuild of the same commit gets the same base.
# Every image runs `rae-serve` as uid/gid 10001 and writes only to /tmp (read-only root file
# system). The ml image carries the ONNX graph of all-MiniLM-L6-v2, exported here with torch,
# and no torch unless ML_TORCH=1.
ARG BASE_IMAGE=python:3.11-slim

# The venv every image starts from: rae-common and its dependencies. No build argument of a
# service is in scope yet, so the seven builds share these layers.
FROM ${BASE_IMAGE} AS common
# pip's own settings, for a mirror or a proxy's CA (build time only: build stages are never
# shipped, and ARGs are not kept in an image).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY constraints.txt ./
# Every package installs in two steps: its dependencies from its pyproject.toml alone (an empty
# package), then its code without dependencies. A change to the code reuses the first layer.
COPY libs/common/pyproject.toml ./libs/common/
RUN mkdir -p libs/common/src && pip install -c constraints.txt ./libs/common
COPY libs/common ./libs/common
RUN pip install --no-deps --force-reinstall ./libs/common

# The service's package. The ml one without torch, or with it when ML_TORCH=1 (the torch
# fallback backend; ~1 GB more).
FROM common AS build
# An ARG is in scope only in the stage that declares it.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
ARG SERVICE
ARG PORT
ARG ML_TORCH=0
# torch's CPU build: any other torch 2.13.0 wheel is the CUDA one (GBs of libraries). An empty
# TORCH_INDEX_URL leaves pip to its own indexes (e.g. PIP_FIND_LINKS with the wheel on disk).
ARG TORCH_VERSION=2.13.0+cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN case "$SERVICE" in gateway|memory|ml|graph|reflection|cost|events) ;; \
      *) echo "build arg SERVICE must be gateway, memory, ml, graph, reflection, cost or events (got '$SERVICE')" >&2; exit 1 ;; \
    esac \
 && case "$PORT" in ''|*[!0-9]*) echo "build arg PORT must be the service's port, e.g. 8001 (got '$PORT')" >&2; exit 1 ;; esac
COPY services/${SERVICE}/pyproject.toml ./services/${SERVICE}/
RUN mkdir -p "services/$SERVICE/src" \
 && if [ "$SERVICE" = ml ] && [ "$ML_TORCH" = 1 ]; then \
      pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "torch==$TORCH_VERSION" \
      && pip install -c constraints.txt "./services/ml[torch]"; \
    else \
      pip install -c constraints.txt "./services/$SERVICE"; \
    fi
COPY services/${SERVICE} ./services/${SERVICE}
RUN pip install --no-deps --force-reinstall "./services/$SERVICE" \
 && pip uninstall --yes pip setuptools

# ml: the embedding model's ONNX graph, exported and checked against torch here, so the image
# neither needs torch nor exports anything when it starts. Other services: an empty directory.
FROM common AS model
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
ARG SERVICE
ARG TORCH_VERSION=2.13.0+cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY services/${SERVICE}/pyproject.toml ./services/${SERVICE}/
RUN mkdir -p /opt/rae/onnx "services/$SERVICE/src" \
 && if [ "$SERVICE" = ml ]; then \
      pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "torch==$TORCH_VERSION" \
      && pip install -c constraints.txt "./services/ml[torch]"; \
    fi
COPY services/${SERVICE} ./services/${SERVICE}
RUN if [ "$SERVICE" = ml ]; then \
      pip install --no-deps --force-reinstall ./services/ml \
      && HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HOME=/tmp python -m rae_ml.export_model /opt/rae/onnx; \
    fi

FROM ${BASE_IMAGE} AS runtime
ARG SERVICE
ARG PORT

# A name for uid 10001, written directly: the base need not carry useradd.
RUN echo "rae:x:10001:10001:RAE:/tmp:/usr/sbin/nologin" >> /etc/passwd \
 && echo "rae:x:10001:" >> /etc/group \
 && mkdir /app

COPY --from=build /opt/venv /opt/venv
COPY --from=model /opt/rae/onnx /opt/rae/onnx

# HOME=/tmp: the only writable path under a read-only root file system. The graph directory is
# read only; only the ml service reads EMBEDDING_ONNX_CACHE_DIR, and no service may reach the
# Hugging Face hub.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    RAE_SERVICE=${SERVICE} \
    RAE_PORT=${PORT} \
    EMBEDDING_ONNX_CACHE_DIR=/opt/rae/onnx \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

WORKDIR /app
USER 10001:10001
EXPOSE ${PORT}
CMD ["rae-serve"]

# Last, so a new revision changes only the image's metadata, never a cached layer.
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="rae-${SERVICE}" \
      org.opencontainers.image.description="RAE ${SERVICE} service (rae-serve)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
