"""`python -m chatbot`: serve the chatbot with uvicorn on the configured host and port."""

from services.serve import serve

from .config import Settings
from .main import create_app

if __name__ == "__main__":
    serve("chatbot", Settings(), create_app, timeout_graceful_shutdown=3)
