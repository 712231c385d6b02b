"""Training: the DPO run with TRL + PEFT (`dpo`) and the KTO run on labelled completions (`kto`), the
background job and its progress (`job`, `progress`), the preflight checks (`preflight`), live warnings (`monitor`),
what a finished round can become (`rounds`: naming, merge, push, model card), rounds trained elsewhere
(`adapters`), the service's training intents (`intents`, a mixin) and training without the app (`headless`:
`prefapp train`, torchrun, accelerate).

May import: `config`, `models`, `store`, `preferences`.
"""
