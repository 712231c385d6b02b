"""Preferences: the one pipeline from the store's votes and imported pairs to the DPO dataset (`resolve`:
`preference_dataset`, computed in DuckDB, handed over as Arrow), writing it out (`export`), preference data coming
in (`formats`: detection and parsers of every common format; `pair_import`: reading files, folders and Hub
datasets), and prompt files and prompt datasets coming in (`prompts`, `prompt_import`).

May import: `config`, `store`, `labeling.quality` (which sample won), `hosting` (token redaction, output paths).
"""
