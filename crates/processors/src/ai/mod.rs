//! Language-model provider clients (OpenAI-compatible chat completions, Anthropic Messages).
