"""Labelling: where responses are generated (`backends`: in this process or an OpenAI-compatible engine;
`generation`: chat template + one batched `generate`; `chat`: the Chat tab's replies, whole or streamed), the
background queue that keeps pairs ready (`pair_queue`), pairs worth a label (`distinct`: never two identical
responses; `active`: pairs the current round is unsure about), which pair an annotator gets next (`next_pair`),
the annotators' quality figures (`quality`), and the service's labelling intents (`intents`, a mixin).

May import: `config`, `models`, `store`.
"""
