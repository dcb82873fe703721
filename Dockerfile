# The matching index (native/) is Rust: built into a wheel in its own stage, so the image that
# runs jobwire carries no compiler.
FROM python:3.11-slim AS native
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates gcc libc6-dev \
    && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/root/.cargo/bin:$PATH
COPY native /native
RUN pip wheel --no-cache-dir /native -w /wheels

FROM python:3.11-slim
WORKDIR /app
COPY --from=native /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY pyproject.toml README.md ./
COPY config ./config
COPY consumers ./consumers
COPY service ./service
COPY devstack ./devstack
RUN pip install --no-cache-dir .
# The subscriptions API (JOBWIRE_API__HOST=0.0.0.0 to reach it from outside the container).
EXPOSE 8080
ENTRYPOINT ["jobwire"]
CMD ["run"]
