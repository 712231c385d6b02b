"""Labelling: where responses are generated (`backends`: in this process or an OpenAI-compatible engine; `chat`
for the Chat tab's replies), generating candidate pairs (`generation`), the background queue that keeps pairs ready
(`pair_queue`), which pair an annotator gets next (`next_pair`), and the annotators' quality figures (`quality`).

May import: `config`, `models`, `store`.
"""
