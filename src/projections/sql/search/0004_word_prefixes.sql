-- `customer_words` holds every word of the search text, the email address too, and
-- compares them byte-wise (COLLATE "C"), so its key answers "a word starts with q" as one
-- range of its entries (`word LIKE 'q%'`, whatever the database's collation): a name
-- prefix's customers are found in the words' index, newest first after a sort of its
-- entries, instead of fetching every row that has a word starting with q from the heap.
-- The email address is a word like the others: a word of a row's search text may start
-- with q there too (`"ada.lovelace1@example.com"` starts with "ada").
ALTER TABLE {schema}.customer_words ALTER COLUMN word TYPE text COLLATE "C";

INSERT INTO {schema}.customer_words (word, registered_at, id)
SELECT DISTINCT w.word, c.registered_at, c.id
FROM {schema}.customers c, regexp_split_to_table(c.search_text, ' ') AS w(word)
WHERE strpos(w.word, '@') > 0;
