"""prefapp: closed-loop preference alignment in one Gradio app. Hugging Face Spaces runs this file."""

import sys

from prefapp.config import AppConfig, ConfigError
from prefapp.ui.app import launch

if __name__ == "__main__":
    try:
        launch(AppConfig.from_env())
    except (ConfigError, RuntimeError) as exc:  # a damaged store, a refused bind: the message says what to do
        sys.exit(f"prefapp: {exc}")
