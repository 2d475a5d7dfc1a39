"""Archiving stale memory: entries nobody wrote or read here for a namespace's
`archive_after` (and, where a namespace opts in, copies of entries that
expire) move out of the live store into zstandard-compressed segment files
under `<data dir>/archive/`.

`segments.py` writes and reads the compressed files, `records.py` is what the
storage engine does with archived entries inside its transactions,
`archiver.py` is the background pass that picks and moves them, and `ops.py`
the client operations (`archive_list`, `archive_get`, `archive_restore`) and
the `reads` step that tells the archiver what was read. docs/ARCHITECTURE.md
("Archiving") explains why archiving is local to each node and how it stays
invisible to anti-entropy.
"""
