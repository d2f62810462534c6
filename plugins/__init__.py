"""First-party plugins (quantize, prune, low-rank, early exit, export). Qt-free, like the engine.

They arrive with the plugin-system issue and are declared as ``deploy_studio.plugins`` entry points.
"""
