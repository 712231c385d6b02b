"""Evaluation: judging every round blind on held-out prompts.

`stats` (win rate with a Wilson interval, length-controlled win rate, Bradley-Terry leaderboard with bootstrap
intervals, the verdict in words), `checks` (automatic post-round checks: repetition, length, drift from the
base, with the remedy named), `heldout` (which prompts are kept out of labelling), `queue` (eval pairs
generated ahead of the judges), `judge` (serving eval pairs, recording votes, the simulated judge loop used by
`prefapp eval`, `prefapp loop` and the bench) and `gate` (may a round become the generator?).

May import: `config`, `models`, `store`, `labeling` (generation, the queue's thread helpers), `preferences`
(prompt import).
"""
