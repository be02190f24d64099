"""Code shared by every TinyLLM service: settings, errors, health, metrics, HTTP, launcher."""
