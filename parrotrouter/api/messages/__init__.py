"""Anthropic's Messages API, inbound: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

Authentication as Anthropic's clients send it (`x-api-key: <key>`, or `Authorization: Bearer`);
`anthropic-version` and `anthropic-beta` are accepted (and forwarded to Anthropic deployments);
every error is in Anthropic's shape (`errors.py`, one conversion in `encode.anthropic_error`).

Served by an Anthropic deployment, the request goes natively: the client's body with only
`model` and the credentials changed, so cache_control, thinking signatures, output_config, betas
and fields newer than this gateway reach Anthropic intact; its answer and events come back as
Anthropic sent them (our message id and model name). Served by any other model, it is translated
to the canonical chat request (`decode.py`), field by field:

- `system` (string or text blocks), text blocks: system and user/assistant messages.
- image blocks: `image_url` parts (base64 as a data URL, url as is); `file` sources dropped.
- document blocks: base64 PDF as a `file` part; text and content sources as text parts; url and
  file sources dropped (Anthropic fetches them, other models cannot).
- `tool_use` / `tool_result` (string or blocks, `is_error`): assistant `tool_calls` / `tool`
  messages (their text; `is_error` prefixes "Error: "; images follow in a user message).
- `thinking` / `redacted_thinking` blocks: `reasoning_details` of the canonical request, for
  providers that translate from it (Bedrock, Gemini); not sent to OpenAI-compatible upstreams.
- `tools` (custom), `tool_choice` auto/any/tool/none, `disable_parallel_tool_use`: function
  tools, `tool_choice` auto/required/named/none, `parallel_tool_calls: false`.
- server tools (`web_search_…`, `bash_…`, …) and other block types (search results, container
  uploads, …): dropped (Anthropic runs them; other models cannot).
- `max_tokens` (required): `max_completion_tokens`. `stop_sequences`: `stop`, the first 4
  (OpenAI's limit). `temperature`, `top_p`: as they are. `top_k`: dropped (no OpenAI equivalent).
- `metadata.user_id`: `user` (the ledger's user).
- `thinking` enabled (`budget_tokens`) / adaptive / disabled: the canonical thinking budget
  (`reasoning.max_tokens`; adaptive: medium) for providers that take one (Gemini, Bedrock); not
  sent to OpenAI-compatible upstreams, which reject it on models that do not reason.
- `output_config.format` / `output_format` (json_schema): `response_format` json_schema (name
  `output`, not strict).
- `output_config.effort`, `cache_control`, `service_tier`, `container`, unknown fields: dropped.

Answers and streams are encoded back (`encode.py`, `stream.py`): thinking, text and tool_use
blocks; `stop_reason` from the finish reason; usage with `input_tokens` excluding cache reads
(`cache_read_input_tokens`) and writes (`cache_creation_input_tokens`), as Anthropic counts.
Bounds: `protocol.py` (messages, blocks, tools, stop sequences, names, ids, JSON nesting).
"""
