"""The chatbot: browser chat, OpenAI-compatible gateway and terminal chat in front of llmserver."""
