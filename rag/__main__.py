"""`python -m rag`: serve the rag API with uvicorn on the configured host and port."""

from services.serve import serve

from .config import Settings
from .main import create_app

if __name__ == "__main__":
    serve("rag", Settings(), create_app, access_log=False)
