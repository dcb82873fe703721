FROM python:3.11-slim
WORKDIR /app
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
