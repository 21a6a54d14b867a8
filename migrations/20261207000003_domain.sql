-- Conveyor's domain: authors, books (with their chapters' text) and quotes, which
-- the author_data, book_data and quote_data handlers read and write.
--
-- Handlers run at least once, so every write lands on a natural key and a second
-- run changes the same row: an author's Wikidata id (else its name, under an
-- advisory lock in the store), a book's identifier (dc:identifier, else its source
-- path), a quote's book and text. Ids are UUIDv7, so `id DESC` breaks ties in
-- newest-first pages the same way `created_at DESC` orders them.

CREATE TABLE authors (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    wikidata_id text        UNIQUE CHECK (wikidata_id ~ '^Q[1-9][0-9]*$'),
    -- Strings at the statement's precision (YYYY-MM-DD, YYYY-MM or YYYY, a leading
    -- '-' for BCE): a date type cannot hold a bare year or month.
    birth_date  text,
    death_date  text,
    countries   text[]      NOT NULL DEFAULT '{}',
    occupations text[]      NOT NULL DEFAULT '{}',
    description text,
    image_url   text,
    avatar_path text,
    bio         text,
    persona     jsonb,
    timeline    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The author list, newest first; the name lookup of imports that carry no Wikidata id.
CREATE INDEX authors_created_idx ON authors (created_at DESC, id DESC);
CREATE INDEX authors_name_idx ON authors (name);

CREATE TABLE books (
    id            uuid        PRIMARY KEY,
    title         text        NOT NULL,
    -- An author removed leaves their books in place.
    author_id     uuid        REFERENCES authors ON DELETE SET NULL,
    -- dc:identifier, else the source path: what makes a re-import update this row.
    identifier    text        UNIQUE,
    language      text,
    chapter_count integer     NOT NULL DEFAULT 0,
    word_count    bigint      NOT NULL DEFAULT 0,
    summary       text,
    cefr_level    text        CHECK (cefr_level IN ('A1', 'A2', 'B1', 'B2', 'C1', 'C2')),
    characters    jsonb,
    chinese_title text,
    source_path   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The book list, newest first, in all and per author (`?authorId=`).
CREATE INDEX books_created_idx ON books (created_at DESC, id DESC);
CREATE INDEX books_author_idx ON books (author_id, created_at DESC, id DESC);

-- A book's text, one row per chapter in reading order; a re-import replaces them all.
CREATE TABLE book_chapters (
    book_id    uuid    NOT NULL REFERENCES books ON DELETE CASCADE,
    index      integer NOT NULL CHECK (index >= 0),
    title      text,
    text       text    NOT NULL,
    word_count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (book_id, index)
);

CREATE TABLE quotes (
    id           uuid        PRIMARY KEY,
    book_id      uuid        NOT NULL REFERENCES books ON DELETE CASCADE,
    text         text        NOT NULL,
    chapter      integer,
    categories   text[]      NOT NULL DEFAULT '{}',
    -- Language code -> translated text.
    translations jsonb       NOT NULL DEFAULT '{}'::jsonb
                             CHECK (jsonb_typeof(translations) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per quote text in a book, so extracting the same quote again reuses it
-- (hashed: a btree entry cannot hold an arbitrarily long text).
CREATE UNIQUE INDEX quotes_book_text_key ON quotes (book_id, md5(text));
-- The quote list, newest first, in all and per book (`?bookId=`).
CREATE INDEX quotes_created_idx ON quotes (created_at DESC, id DESC);
CREATE INDEX quotes_book_idx ON quotes (book_id, created_at DESC, id DESC);
