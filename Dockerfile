# jobwire's image: `jobwire run` and what it needs, nothing of the dev stack (devstack/, tests,
# dev dependencies). `docker compose up --build` builds it; so does `docker build -t jobwire .`.

# Stage 1: the two wheels. The matching index (native/) is Rust, built in the official Rust
# image; Debian bookworm's python3 is 3.11, the Python of the runtime below. pip and the build
# backends (setuptools, maturin) come from requirements/build.txt, pinned with hashes.
FROM rust:1.99-slim-bookworm AS native
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements/build.txt requirements/build.txt
RUN python3 -m venv /build \
    && /build/bin/pip install --no-cache-dir --require-hashes -r requirements/build.txt
# maturin's build backend calls its own command, so the venv goes first on PATH.
ENV PATH=/build/bin:$PATH
COPY native native
COPY pyproject.toml README.md ./
COPY config config
COPY consumers consumers
COPY service service
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation ./native . -w /wheels

# Stage 2: the runtime. Every dependency at the version and hash in requirements/runtime.txt,
# then the two wheels without dependencies; `pip check` proves nothing is missing.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /install
COPY requirements/runtime.txt requirements/runtime.txt
COPY --from=native /wheels wheels
RUN pip install --no-cache-dir --require-hashes -r requirements/runtime.txt \
    && pip install --no-cache-dir --no-deps wheels/*.whl \
    && pip check \
    && cd / && rm -rf /install
# A user of its own, not root; the default SQLite store (./jobwire.db) is kept in its home.
RUN useradd --system --user-group --uid 10001 --create-home --home-dir /var/lib/jobwire jobwire
USER jobwire
WORKDIR /var/lib/jobwire
# The subscriptions API (JOBWIRE_API__HOST=0.0.0.0 to reach it from outside the container).
EXPOSE 8080
# Healthy once Kafka and the store answer (/readyz). With JOBWIRE_API__ENABLED=false there is no
# API to ask: run such a container with --no-healthcheck.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('JOBWIRE_API__PORT', '8080') + '/readyz', timeout=4)"]
ENTRYPOINT ["jobwire"]
CMD ["run"]
