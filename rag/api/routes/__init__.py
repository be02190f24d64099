"""Routers of the rag service, one module per resource."""
