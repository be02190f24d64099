"""HTTP layer of the rag service."""
