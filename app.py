"""prefapp: closed-loop preference alignment in one Gradio app. Hugging Face Spaces runs this file."""

from prefapp.config import AppConfig
from prefapp.ui.app import launch

if __name__ == "__main__":
    launch(AppConfig())
