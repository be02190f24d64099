"""llmserver: OpenAI-compatible inference on llama.cpp (llama-cpp-python)."""
