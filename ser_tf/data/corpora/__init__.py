"""One module per corpus; importing this package registers them all in :data:`CORPORA`."""

from ser_tf.data.corpora.base import CORPORA, Corpus, CorpusLayoutError, register  # noqa: F401

# Each import registers one corpus.
from ser_tf.data.corpora import (  # noqa: F401,E402
    casia, cremad, csv_manifest, emodb, emovo, folder, iemocap, ravdess, savee, sewa, tess)
