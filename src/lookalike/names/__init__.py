"""Character-level name generator (a GRU trained on a list of names).

Modules::

    corpus.py    built-in corpora (Pokemon names, census first names) and name files
    model.py     vocabulary and the GRU forward pass in numpy (serving needs no torch)
    train.py     training with torch (imported only there), the bigram baseline
    store.py     versioned artifacts ``names/nNNNN/`` (atomic, digests checked on load)
    generate.py  validated requests, sampling, rejection of known names
    service.py   train + register + promotion gate; ``NameGenerator`` follows the champion
    cli.py       ``lookalike names train | generate``
"""
