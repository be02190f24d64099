"""`python -m rag`: serve the rag API with uvicorn on the configured host and port."""

from __future__ import annotations

import uvicorn

from services.logs import setup_logging

from .config import Settings
from .main import create_app


def main() -> None:
    settings = Settings()
    setup_logging(settings.log_level, "rag")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level, access_log=False)


if __name__ == "__main__":
    main()
