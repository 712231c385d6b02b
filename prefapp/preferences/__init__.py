"""Preferences: the one pipeline from the store's votes to the DPO dataset (`resolve`), writing it out
(`export`), and prompt files and prompt datasets coming in (`prompts`, `prompt_import`).

May import: `config`, `store`, `labeling.quality` (which sample won), `hosting.environment` (token redaction).
"""
