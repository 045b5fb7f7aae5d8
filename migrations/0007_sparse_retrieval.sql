-- Sparse retrieval (adapters/postgres rag_index.go): every chunk gets its
-- term counts, searched by BM25; dense vectors become optional, for
-- collections without an embedding model.

-- A collection of dimension 0 holds no dense vectors.
ALTER TABLE rag_collections DROP CONSTRAINT rag_collections_dimension_check;
ALTER TABLE rag_collections ADD CONSTRAINT rag_collections_dimension_check CHECK (dimension >= 0);

-- The sparse encoding (rag.SparseEncoding) of the collection's term
-- vectors; NULL for a collection written before there were any, whose
-- chunks the next ingest re-writes.
ALTER TABLE rag_collections ADD COLUMN sparse text;

ALTER TABLE rag_chunks ALTER COLUMN vector DROP NOT NULL;

-- The chunk's term counts: for each term, its index (uint32) and count
-- (float32), little-endian, by ascending index. NULL for a chunk written
-- before there were any.
ALTER TABLE rag_chunks ADD COLUMN terms bytea;
