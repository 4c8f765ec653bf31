# Same steps as CI (`make test` installs with pip into a venv); no Docker engine is needed
# to develop Tenang, this file is for deployment.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY admin_ui ./admin_ui
RUN python -m venv /app/.venv && /app/.venv/bin/pip install --no-cache-dir .
# The SQLite queue lives here: mount a persistent volume, or accepted requests are lost
# with the container.
VOLUME /var/lib/tenang
EXPOSE 8080 8081
ENTRYPOINT ["/app/.venv/bin/tenang"]
CMD ["serve", "--config", "/etc/tenang/config.toml"]
