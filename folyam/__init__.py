"""Folyam: stream a language model's answer into the browser as server-rendered HTML over SSE."""
