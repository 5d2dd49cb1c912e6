"""Storage: the only layer that knows SQL."""

import logging as _logging

# Alembic logs each plugin and revision at INFO; a library user's console log at INFO
# should not show them. A level set on the "alembic" logger before this import is kept
# (``joblog serve -v`` sets INFO to show the migrations).
if _logging.getLogger("alembic").level == _logging.NOTSET:
    _logging.getLogger("alembic").setLevel(_logging.WARNING)
