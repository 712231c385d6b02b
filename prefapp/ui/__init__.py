"""The Gradio app: the tabs, the named API and the access guard. The only package that imports gradio;
every handler adapts an event to `PrefService` and turns a domain error into a message.

May import: everything.
"""
