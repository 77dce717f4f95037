-- How a typo finds its words: each vocabulary word under itself and under each of its
-- one-letter deletions. Two words one typo apart (a letter wrong, missing or added, two
-- neighbours swapped) share one of these, so a query word's deletions, looked up by
-- equality in the key, are its candidate words: a few, instead of the thousands sharing
-- 30% of its trigrams that the vocabulary's trigram index returned and the heap rechecked
-- (700 buffers a typo at a million customers). The deletions compare byte-wise: only
-- equality is asked of them. `projections.search_words.deletions_of` computes the same.
CREATE TABLE {schema}.search_word_deletions (
    deletion text COLLATE "C" NOT NULL,
    word text NOT NULL,
    PRIMARY KEY (deletion, word)
);

INSERT INTO {schema}.search_word_deletions (deletion, word)
SELECT v.word, v.word FROM {schema}.search_words v
UNION
SELECT overlay(v.word PLACING '' FROM i FOR 1), v.word
FROM {schema}.search_words v, generate_series(1, length(v.word)) AS i;

-- The trigram probe it replaces was that index's only reader.
DROP INDEX {schema}.search_words_trgm_idx;
