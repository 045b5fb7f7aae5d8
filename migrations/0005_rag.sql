-- The embedded retrieval index (adapters/postgres rag_index.go): document
-- chunks and their vectors, grouped in collections of one dimension (one
-- collection per embedder). Processes load a collection into memory and
-- search it there; this is its durable copy.

CREATE TABLE rag_collections (
    name       text        PRIMARY KEY,
    dimension  int         NOT NULL CHECK (dimension > 0),
    -- bumped by every transaction that changes the collection's chunks, so
    -- a process can tell cheaply whether its in-memory copy is current
    generation bigint      NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rag_chunks (
    collection  text   NOT NULL REFERENCES rag_collections (name) ON DELETE CASCADE,
    -- rag.ChunkID(source, chunk_index, hash)
    id          uuid   NOT NULL,
    source      text   NOT NULL,
    title       text   NOT NULL,
    chunk_index int    NOT NULL,
    text        text   NOT NULL,
    -- hex SHA-256 of text
    hash        text   NOT NULL,
    metadata    jsonb  NOT NULL DEFAULT '{}',
    -- the unit-length vector: dimension float32 values, little-endian
    vector      bytea  NOT NULL,
    -- the collection generation that last wrote the row
    generation  bigint NOT NULL,
    PRIMARY KEY (collection, id)
);

CREATE INDEX rag_chunks_source ON rag_chunks (collection, source);
