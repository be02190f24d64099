"""`python -m llmserver`: serve on LLMSERVER_HOST:LLMSERVER_PORT."""

from services.serve import serve

from .config import Settings
from .main import create_app

if __name__ == "__main__":
    serve("llmserver", Settings(), create_app)
