"""prefapp: closed-loop preference alignment of language models.

Subpackages by concern, each importing only the ones listed in its own docstring:
`store` (the DuckDB file), `labeling` (pairs, which pair next, annotator quality), `preferences` (votes and
imported data -> one DPO dataset, prompt files), `training` (preflight, DPO job, monitor, rounds, headless runs),
`hosting` (accounts, sign-in, bind guard, paths), `demo` (the bundled task, model and simulated loop) and `ui`
(the Gradio tabs; the only place gradio is imported). `config` holds the dataclass configs, `models` the loaded
policy, `service` the facade the UI and the CLI call, `cli` the command line.
"""
