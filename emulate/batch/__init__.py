"""Runs answered in batches: request files in the Batch API's format and their results
(files), OpenAI's Batch API (service), and a request file sent to any server (execute)."""
