"""Deploy Studio's engine: loading, runtimes, measurement. Never imports Qt.

Importing the package makes every library it may load later behave offline (see ``studio.offline``),
so that nothing can try to download weights or data behind the user's back.
"""

from studio import offline as _offline

__version__ = "0.1.0"

_offline.apply()
