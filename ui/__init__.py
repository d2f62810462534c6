"""Deploy Studio's desktop face (PySide6 + pyqtgraph). The only package allowed to import Qt.

``ui.launcher`` is the ``deploy-studio`` entry point: no arguments open ``ui.app``'s window, any
arguments go to the command line (``studio.cli``).
"""
