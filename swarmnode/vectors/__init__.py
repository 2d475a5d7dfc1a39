"""Vector memory: hnswlib shards per namespace, kept true to the store, searched by `vsearch`.

    service.py     attach_vectors / VectorMemory: vsearch, vsearch_many, text-embedding put, stats
    indexer.py     the one thread that loads, changes and checkpoints the index
    space.py       one namespace: shards, label <-> key maps, filter postings, search
    shards.py      one hnswlib index and its file
    catalog.py     the vector layer's own LMDB: checkpoints (labels, manifests, position)
    records.py     entries read from the store's records, decoded once per version
    filters.py     metadata filters (equality, membership)
    (../tagged_cache.py holds the byte-bounded LRU of decoded entries and embeddings)
    embedders.py   named embedders; minilm.py, wordpiece.py: all-MiniLM-L6-v2 in numpy
    cli.py         `swarmnode vsearch`
    config.py      VectorConfig

Nothing is imported here, so `swarmnode.config` can import `vectors.config`
without pulling in the API layer.
"""
