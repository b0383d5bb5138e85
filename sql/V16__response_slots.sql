-- Issue 9: concurrent responses per conversation and per organization, shared by every api replica.
-- A row is an answer asked for and not ended: the api inserts it before it publishes the message (counting the
-- conversation's and the org's rows under a per-org advisory lock, so two replicas never both take the last
-- slot); the audit writer deletes it with the answer's end event (completed, failed, stopped: also the retry's
-- end after a worker crash). `expires_at` bounds a slot whose end never comes (its job lost for good): an
-- expired row counts for nothing and the next take in its org deletes it.
CREATE TABLE response_slots (
    response_id     uuid PRIMARY KEY,
    conversation_id uuid NOT NULL,
    org_id          uuid NOT NULL,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX response_slots_org_idx ON response_slots (org_id, conversation_id);
