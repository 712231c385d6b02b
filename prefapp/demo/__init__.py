"""The bundled demo: the synthetic question-answering task and its simulated annotator (`task`), the tiny
model trained on it (`model`), and the closed loop run end to end without a human (`loop`).

May import: everything below `service` except `ui`.
"""
