# pvetrail: the API, collectors and projections in one process (see compose.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY eventstore ./eventstore
COPY projections ./projections
COPY collectors ./collectors
COPY api ./api
COPY migrations ./migrations
COPY demo ./demo
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /var/lib/pvetrail --create-home pvetrail
USER pvetrail
WORKDIR /var/lib/pvetrail

# Inside the container the API listens on every interface; `serve` refuses that unless
# API tokens are configured (compose.yaml gives a reader token).
ENV PVETRAIL_LISTEN=0.0.0.0:8080
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=3)"]

STOPSIGNAL SIGTERM
CMD ["pvetrail", "serve"]
