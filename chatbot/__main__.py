"""`python -m chatbot`: serve the chatbot with uvicorn on the configured host and port."""

from services.serve import serve

from .config import Settings
from .main import create_app

if __name__ == "__main__":
    # No proxy headers from uvicorn: it believes X-Forwarded-For from 127.0.0.1 by default,
    # and CHATBOT_TRUSTED_PROXIES alone says whose header names the client (the login limit).
    serve("chatbot", Settings(), create_app, timeout_graceful_shutdown=3, proxy_headers=False)
