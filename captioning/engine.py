"""The Vosk model, loaded once per process and shared by every recognizer."""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Files every Vosk model directory has, whichever way it was unpacked.
REQUIRED_MODEL_PARTS = ("am/final.mdl", "conf/mfcc.conf")


@dataclass
class CaptionEngine:
    model_path: Path
    model: Any = None
    status: str = "not loaded"
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=os.cpu_count() or 2, thread_name_prefix="vosk"
        )
    )

    @property
    def available(self) -> bool:
        return self.model is not None

    async def load(self) -> None:
        """Load the model off the event loop; a missing or broken model is reported, not fatal."""
        missing = [p for p in REQUIRED_MODEL_PARTS if not (self.model_path / p).exists()]
        if not self.model_path.is_dir() or missing:
            self.status = f"captions unavailable: no Vosk model at {self.model_path}"
            log.warning(self.status)
            return
        try:
            loop = asyncio.get_running_loop()
            self.model = await loop.run_in_executor(self.pool, _load_model, self.model_path)
            self.status = "ok"
        except Exception as exc:  # Vosk raises a bare Exception for a corrupt model
            self.model = None
            self.status = f"captions unavailable: the Vosk model failed to load ({exc})"
            log.warning(self.status)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.model = None


def _load_model(path: Path) -> Any:
    import vosk

    vosk.SetLogLevel(-1)
    return vosk.Model(str(path))
