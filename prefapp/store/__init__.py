"""The store: one DuckDB file behind the `Store` class (all SQL, `?` parameters, a cursor per thread,
serialized writes), its recorded migrations, and the dataclasses its methods return.

May import: `prefapp.config` only.
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
