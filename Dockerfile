FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY consumers ./consumers
COPY service ./service
COPY devstack ./devstack
RUN pip install --no-cache-dir .
ENTRYPOINT ["jobwire"]
CMD ["run"]
