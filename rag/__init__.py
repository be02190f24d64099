"""rag: document ingest by REST upload (extract, chunk, embed, Qdrant) and retrieval."""
