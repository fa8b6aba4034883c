"""The machinery around the taught core: the ``minidni`` command line (:mod:`.cli`), the
demo (:mod:`.demo`), progress display (:mod:`.progress`) and the divergence monitor of
long runs (:mod:`.monitor`). Nothing here is needed to understand DNI."""
