"""Training: the DPO run with TRL + PEFT (`dpo`), the background job and its progress (`job`), the
preflight checks (`preflight`), live warnings (`monitor`), what a finished round can become (`rounds`: merge, push,
model card) and training without the app (`headless`: `prefapp train`, torchrun, accelerate).

May import: `config`, `store`, `preferences`.
"""
