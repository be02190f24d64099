"""trainer: train a tiny llama model from text in PyTorch and export it as GGUF."""
