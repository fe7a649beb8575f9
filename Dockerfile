# exfilguard image: `exfilguard worker` by default; the Helm chart in helm/exfilguard runs it.
#   docker build -t exfilguard:0.1.0 .
# The base image should be pinned by digest (python:3.11-slim@sha256:...), so a rebuild gets the
# same bytes and a tampered tag is refused. NOT YET PINNED: this tree was prepared without
# access to a container registry, and a digest must never be guessed. To pin, and to update
# (monthly, or on a Python security release):
#   docker buildx imagetools inspect python:3.11-slim --format '{{json .Manifest.Digest}}'
# then set PYTHON_IMAGE=python:3.11-slim@sha256:<that digest> below (a multi-arch index digest),
# or let Renovate/Dependabot's docker updater bump it.
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: the exfilguard wheel and every dependency as wheels ---------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# README.m[d]: the package's long description, copied when it is there.
COPY pyproject.toml README.m[d] ./
COPY streams/ streams/
COPY schemas/ schemas/
# The MaxMind DB reader (maxminddb) is a dependency; the .mmdb files are mounted at run time
# (the chart's geoip values), never baked in. rocksdict and confluent-kafka ship manylinux
# wheels: no compiler is needed. --prefer-binary keeps pip from building a newer sdist when a
# wheel of an older release fits. The versions are pinned by what `pip wheel` resolved: the
# install below is offline (--no-index) from those wheels only.
# hadolint ignore=DL3013
RUN pip wheel --prefer-binary --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/exfilguard \
 && pip --python /opt/exfilguard/bin/python install --no-index --find-links /wheels exfilguard \
 && /opt/exfilguard/bin/exfilguard --version

# --- runtime: the venv only, no build tools, not root ---------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/exfilguard/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    HOME=/tmp \
    EXFILGUARD_DATA_DIR=/var/lib/exfilguard \
    EXFILGUARD_WEB_HOST=0.0.0.0 \
    EXFILGUARD_WEB_PORT=6066
RUN groupadd --system --gid 10001 exfilguard \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/exfilguard --no-create-home \
      --shell /usr/sbin/nologin exfilguard \
 && mkdir -p /var/lib/exfilguard /etc/exfilguard \
 && chown 10001:10001 /var/lib/exfilguard
COPY --from=builder /opt/exfilguard /opt/exfilguard
WORKDIR /var/lib/exfilguard
USER 10001:10001
EXPOSE 6066
VOLUME ["/var/lib/exfilguard"]
ENTRYPOINT ["exfilguard"]
CMD ["worker"]
