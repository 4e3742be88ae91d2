"""Evalgate settings, read from environment variables only (see README "Configuration")."""

import os
from pathlib import Path

import dj_database_url
import plotly
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = env_str(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    try:
        return int(raw) if raw else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    # Development only: a per-checkout key is fine because DEBUG never faces the internet.
    SECRET_KEY = "insecure-development-key-set-SECRET_KEY-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "simple_history",
    "audit_app",
    "datasets_app",
    "grading_app",
    "monitoring_app",
    "gates_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit_app.middleware.AuditContextMiddleware",
    "evalproject.charts.ChartsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "evalproject.urls"
WSGI_APPLICATION = "evalproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "evalproject" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
VAR_DIR = Path(env_str("EVALGATE_VAR_DIR") or BASE_DIR / "var")
DATABASE_URL = env_str("DATABASE_URL")
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded default must work on a fresh clone
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'evalgate.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A web process and workers share the file: WAL lets readers run beside one writer, and
    # IMMEDIATE transactions take the write lock up front instead of failing mid-transaction
    # with "database is locked" when two processes upgrade read locks at once.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif env_bool("EVALGATE_DB_PREPARED_STATEMENTS", default=True):
    # The API's hot queries are prepared once per connection (evalproject.prepared); Django's
    # own cursors bind on the client and are never prepared. Off behind a pooler in transaction
    # mode that does not track prepared statements (PgBouncer before 1.21). A query is prepared
    # on its second run on a connection: one run once (a migration's) is not worth a statement.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 2
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# History rows keep the whole reason a person wrote (a retirement, a demotion), not 100 characters.
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

# --- Queue ----------------------------------------------------------------------------
# Unset REDIS_URL means embedded mode: evalproject.queues.enqueue() runs jobs in-process
# after commit. RQ_QUEUES still needs a URL for django-rq to import; nothing connects then.
REDIS_URL = env_str("REDIS_URL")
RQ_QUEUES = {
    "default": {
        "URL": REDIS_URL or "redis://127.0.0.1:6379/0",
        "DEFAULT_TIMEOUT": env_int("EVALGATE_JOB_TIMEOUT", 900),
    },
}
RQ = {"COMMIT_MODE": "on_db_commit", "WORKER_CLASS": "evalproject.worker.Worker"}
# Workers beat every EVALGATE_WORKER_HEARTBEAT_S while a job runs; the reaper treats a started
# job whose worker has not beaten for EVALGATE_WORKER_STALE_S as lost, and retries a chunk at
# most EVALGATE_CHUNK_MAX_ATTEMPTS times in all.
EVALGATE_WORKER_HEARTBEAT_S = env_int("EVALGATE_WORKER_HEARTBEAT_S", 30)
EVALGATE_WORKER_STALE_S = env_int("EVALGATE_WORKER_STALE_S", 3 * EVALGATE_WORKER_HEARTBEAT_S)
EVALGATE_CHUNK_MAX_ATTEMPTS = env_int("EVALGATE_CHUNK_MAX_ATTEMPTS", 3)
# A check whose outputs arrive in pages waits this long for the last one, then is inconclusive.
EVALGATE_UPLOAD_TTL_S = env_int("EVALGATE_UPLOAD_TTL_S", 24 * 3600)
# Production traces are kept this many days unless their source says otherwise; OTLP spans
# whose trace's root span never arrived are assembled as they are after this many seconds.
EVALGATE_TRACE_RETENTION_DAYS = env_int("EVALGATE_TRACE_RETENTION_DAYS", 30)
EVALGATE_OTLP_ASSEMBLY_WAIT_S = env_int("EVALGATE_OTLP_ASSEMBLY_WAIT_S", 300)
# Chart windows are rolled up once this long past their end (traces arriving later than that
# invalidate the source's rollups; see monitoring_app.rollups).
EVALGATE_ROLLUP_SETTLE_MINUTES = env_int("EVALGATE_ROLLUP_SETTLE_MINUTES", 15)
# Embedded mode: a web process's first request finishes runs whose process was killed.
EVALGATE_RECOVER_ON_START = env_bool("EVALGATE_RECOVER_ON_START", default=True)
# The cache holds API rate-limit counters: shared through Redis when there is one.
# Short socket timeouts: when Redis is gone the API notices at once and counts per process.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
RQ_SHOW_ADMIN_LINK = True
EVALGATE_CHUNK_SIZE = env_int("EVALGATE_CHUNK_SIZE", 100)
# Cases per chunk of a run with no model calls (code graders on uploaded outputs).
EVALGATE_CODE_CHUNK_SIZE = env_int("EVALGATE_CODE_CHUNK_SIZE", 1000)
# Embedded mode (no REDIS_URL) on PostgreSQL: threads that run the chunks of a run that calls no
# model (code graders on uploads) in this process.
EVALGATE_EMBEDDED_THREADS = env_int("EVALGATE_EMBEDDED_THREADS", 2)
# Imported by each RQ worker before it forks work horses (what jobs import lazily);
# "module:function" also calls the function (loads what it caches).
EVALGATE_WORKER_PRELOAD = ["grading_app.llm", "grading_app.personas", "grading_app.detectors:model"]
# Hosts model endpoints may point at (empty: any). Workers call these; keep it tight in production.
EVALGATE_ALLOWED_ENDPOINT_HOSTS = env_list("EVALGATE_ALLOWED_ENDPOINT_HOSTS")
# Python modules that register extra grader kinds (see grading_app.graders.register).
EVALGATE_GRADER_MODULES = env_list("EVALGATE_GRADER_MODULES")

# --- Auth, i18n, static ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# plotly.js ships inside the plotly package: served from our static files, no CDN (air-gapped).
STATICFILES_DIRS = [("plotly", Path(plotly.__file__).parent / "package_data")]
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve straight from app directories when collectstatic has not run (dev, tests, demo).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- API ------------------------------------------------------------------------------
# The largest request body the API reads (compressed, and again once decompressed): larger
# ones get 413 in the JSON error shape; `evalgate check` then uploads its outputs in pages.
EVALGATE_MAX_REQUEST_MB = env_int("EVALGATE_MAX_REQUEST_MB", 64)
DATA_UPLOAD_MAX_MEMORY_SIZE = EVALGATE_MAX_REQUEST_MB * 1024 * 1024
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gates_app.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["gates_app.api.permissions.IsTokenOrUser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["gates_app.api.parsers.SafeJSONParser"],
    "EXCEPTION_HANDLER": "gates_app.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": ["gates_app.api.throttling.PerClientRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "client": env_str("EVALGATE_API_RATE", "1200/min"),
        "anonymous": env_str("EVALGATE_API_ANON_RATE", "120/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
}
# A deploy token's poll of a check is answered from the web process's memory while PostgreSQL's
# notifications say nothing it read has changed (gates_app.api.memo); off: every poll reads the
# database. Ignored on SQLite.
EVALGATE_API_MEMO = env_bool("EVALGATE_API_MEMO", default=True)
SPECTACULAR_SETTINGS = {
    "TITLE": "Evalgate API",
    "DESCRIPTION": "Release gates for LLM systems: ask whether a candidate may ship.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gates_app.api.schema.optional_upload",
    ],
    # Two "severity" choice sets (incidents, gate rules) would otherwise get hashed names.
    "ENUM_NAME_OVERRIDES": {
        "IncidentSeverityEnum": "datasets_app.choices.Severity",
        "RuleSeverityEnum": "gates_app.choices.Severity",
        "VerdictEnum": "gates_app.choices.Verdict",
        "ProductionVerdictEnum": "gates_app.choices.PRODUCTION_VERDICTS",
    },
}

# --- Production hardening (behind a TLS-terminating proxy) ------------------------------
if env_bool("EVALGATE_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
    # Load balancers probe /healthz over plain HTTP inside the network: answer, don't redirect.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    if not SECURE_HSTS_PRELOAD:
        # Preloading commits the whole registrable domain in browsers for months and cannot be
        # undone quickly: the operator's call (SECURE_HSTS_PRELOAD=true), so its warning is silenced.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Model calls log every request at INFO; a run makes thousands.
    "loggers": {name: {"level": "WARNING"} for name in ("django.db.backends", "httpx", "httpx2", "openai")},
}
