"""The store: one DuckDB file behind the `Store` class (`store.py`: the connection, a cursor per thread,
serialized writes, prompts, pairs, votes and rounds), with the SQL of each later concern in a mixin beside it
(`counting`: resolution and quality figures in SQL, vote tallies; `evals`: held-out prompts, eval pairs and votes;
`feedback`: labelled completions; `imports`: imported preference pairs; `picks`: what a click reads, from figures
each vote keeps; `selection`: why a pair was served;
`durability`: checkpoints and the lost-data check), its recorded migrations (`migrations`) and the dataclasses its
methods return (`records`). All SQL of prefapp lives here, always with `?` parameters.

May import: `prefapp.config` and `prefapp.errors` only.
"""

from prefapp.store.feedback import AddCompletionsResult, LabelledCompletion
from prefapp.store.imports import AddImportedResult, ImportedPair
from prefapp.store.records import (AddPromptsResult, Pair, Prompt, Round, Vote, VoteCounts, VoteResult,
                                   to_messages)
from prefapp.store.durability import StoreDamagedError
from prefapp.store.store import Store, StoreLockedError

__all__ = ["AddCompletionsResult", "AddImportedResult", "AddPromptsResult", "ImportedPair", "LabelledCompletion",
           "Pair", "Prompt", "Round", "Store", "StoreDamagedError", "StoreLockedError", "Vote", "VoteCounts",
           "VoteResult", "to_messages"]
