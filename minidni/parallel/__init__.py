"""Decoupled modules on their own processes: one module per MPI rank (:mod:`.pipeline`),
exchanging only messages (:mod:`.messages`); run by ``mpiexec -n K minidni parallel``.

The one-process simulation of the same schedules, which is what a student reads to learn
the method, is :class:`minidni.unlock.UnlockedNet`.
"""
