# Tenang's production image: the wheel is built in a first stage, then installed into a
# venv of its own in a slim image that runs as a non-root user. No Docker engine is needed
# to develop Tenang; CI (tests/unit/test_deploy.py) runs this file's COPY and RUN steps of
# both stages without Docker, so the image installs exactly what is tested.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY admin_ui ./admin_ui
RUN pip install --no-cache-dir 'build>=1.2' && python -m build --wheel --outdir /dist .

FROM python:3.11-slim
COPY --from=build /dist /dist
RUN python -m venv /opt/tenang && /opt/tenang/bin/pip install --no-cache-dir /dist/*.whl && rm -rf /dist
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/tenang --shell /usr/sbin/nologin tenang && install -d -o tenang -g tenang -m 0750 /var/lib/tenang
# Listens on 0.0.0.0 inside the container and keeps the SQLite queue on the volume below.
# Mount your own file here to change it (every key: config.example.toml).
COPY deploy/docker.toml /etc/tenang/config.toml
USER tenang
# The SQLite queue lives here: mount a persistent volume, or accepted requests are lost
# with the container.
VOLUME /var/lib/tenang
EXPOSE 8080 8081
# /readyz on the admin port answers 200 while the store is writable (slim has no curl).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["/opt/tenang/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/readyz', timeout=4)"]
ENTRYPOINT ["/opt/tenang/bin/tenang"]
CMD ["serve", "--config", "/etc/tenang/config.toml"]
