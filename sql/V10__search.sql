-- Issue 14: search over the titles and messages of the conversations a person can see (GET /api/v1/search),
-- PostgreSQL full-text with the 'simple' configuration (no stemming or stop words: a team's conversations mix
-- languages, and code and names must match as written). The expressions must stay exactly those of
-- rh_store::search for the planner to use these indexes.
CREATE INDEX messages_text_search_idx ON messages USING gin (to_tsvector('simple', text));
CREATE INDEX conversations_title_search_idx ON conversations USING gin (to_tsvector('simple', title))
    WHERE deleted_at IS NULL;
