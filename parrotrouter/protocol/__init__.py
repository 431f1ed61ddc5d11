"""The OpenAI wire format as typed structs: lenient on unknown fields, loud about bad ones."""
