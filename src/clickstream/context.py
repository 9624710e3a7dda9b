"""What a job needs to run: the config, the engine, where every table lives, and the run's quality record."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clickstream.config import Config
from clickstream.engines.base import Engine


class PipelineError(Exception):
    """A run that must stop: the message is the one-line reason shown to the user."""


class QualityGateError(PipelineError):
    """A quality threshold set to fail was crossed; nothing of the failing step was published."""


@dataclass(frozen=True)
class Layout:
    """The data directory: raw input, one folder per layer, and the pipeline's own state."""

    data_dir: Path

    @property
    def raw(self) -> Path:
        return self.data_dir / "raw"

    @property
    def bronze(self) -> Path:
        return self.data_dir / "bronze"

    @property
    def silver(self) -> Path:
        return self.data_dir / "silver"

    @property
    def quarantine(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def gold(self) -> Path:
        return self.data_dir / "gold"

    @property
    def analytics(self) -> Path:
        return self.data_dir / "analytics"

    @property
    def state(self) -> Path:
        return self.data_dir / "_state"

    @property
    def reports(self) -> Path:
        return self.data_dir / "reports"


def new_run_id(now: datetime) -> str:
    # Sortable by time to the microsecond (silver keeps the copy of the earlier batch), unique even for runs
    # started together; no '-' (it separates batch from file name).
    return now.strftime("%Y%m%dT%H%M%S%f") + "z" + uuid.uuid4().hex[:6]


@dataclass
class RunContext:
    config: Config
    engine: Engine
    layout: Layout
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(tzinfo=None))
    run_id: str = ""
    quality: dict[str, Any] = field(default_factory=dict)
    analytics_group: str = "all"  # basic | advanced | all: which analytics queries to run
    full_refresh: bool = False  # rebuild gold and analytics from all of silver, even where nothing changed

    def __post_init__(self) -> None:
        if not self.run_id:
            self.run_id = new_run_id(self.started_at)
