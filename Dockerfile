# Roundtable in a container: one process serving on port 8000, data under /data.
#
#   docker build -t roundtable .
#   docker run -p 8000:8000 -v roundtable-data:/data \
#       -e SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')" \
#       -e BASE_URL=https://roundtable.example.org roundtable
#
# The source tree is run from /app (the code finds its templates, static files and
# migrations beside it), with the Python dependencies installed in /opt/venv.

# --- Browser assets from npm ------------------------------------------------------
FROM node:20-bookworm-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
    && mkdir -p vendor \
    && cp node_modules/htmx.org/dist/htmx.min.js \
          node_modules/htmx-ext-sse/dist/sse.min.js \
          node_modules/htmx-ext-ws/dist/ws.min.js vendor/

# --- Python dependencies ----------------------------------------------------------
FROM python:3.11-slim-bookworm AS python-deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY pyproject.toml /build/pyproject.toml
# Only the dependencies, read from pyproject.toml: this layer is rebuilt when they change,
# not on every change to the code.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/build/pyproject.toml', 'rb'))['project']['dependencies']))" \
        >/build/requirements.txt \
    && /opt/venv/bin/pip install --upgrade pip \
    && /opt/venv/bin/pip install -r /build/requirements.txt

# --- The application ----------------------------------------------------------------
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    ENVIRONMENT=production \
    DATABASE_URL=sqlite+aiosqlite:////data/roundtable.db \
    UPLOAD_DIR=/data/uploads \
    VOSK_MODEL_PATH=/data/models/model-en-us \
    FORWARDED_ALLOW_IPS=127.0.0.1 \
    PORT=8000

RUN groupadd --system --gid 10001 roundtable \
    && useradd --system --uid 10001 --gid roundtable --home-dir /app --shell /usr/sbin/nologin roundtable \
    && mkdir -p /data/uploads /data/models \
    && chown -R roundtable:roundtable /data

COPY --from=python-deps /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini pyproject.toml ./
COPY migrations ./migrations
COPY app ./app
COPY realtime ./realtime
COPY captioning ./captioning
COPY scripts/run-server ./scripts/run-server
COPY templates ./templates
COPY static ./static
COPY --from=assets /build/vendor ./static/vendor

USER roundtable
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=4)"]

# Bring the database up to date, then serve. SECRET_KEY must be set (at least 32 random
# characters): the app refuses to start in production without it. Behind a reverse proxy
# on another host, set FORWARDED_ALLOW_IPS to its address so client addresses and HTTPS
# are taken from its X-Forwarded-* headers.
CMD ["sh", "-c", "python -m alembic upgrade head && HOST=0.0.0.0 PYTHON=python exec scripts/run-server"]
