"""Deploy Studio's desktop face (PySide6 + pyqtgraph). The only package allowed to import Qt.

The window arrives with the desktop-app issue; until then ``make run`` runs the headless demo.
"""
