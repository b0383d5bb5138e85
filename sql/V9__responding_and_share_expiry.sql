-- Issue 14: the sidebar's "responding…" marker and shares that expire.

-- Answers asked for and not ended yet: a row from `message.created` until the response's end event
-- (completed, failed or stopped). Written by the audit writer in stream order with the transcript, so the marker
-- survives restarts and a worker crash (the retry's end removes it). A conversation is "responding" while it has
-- a row here.
CREATE TABLE responding (
    conversation_id uuid NOT NULL REFERENCES conversations(id),
    response_id     uuid NOT NULL,
    -- Stream position of the message.created that asked for it.
    seq             bigint NOT NULL,
    PRIMARY KEY (conversation_id, response_id)
);

-- A share can end by itself: from `expires_at` on, it grants nothing (the access rule checks it), and the api's
-- expiry task removes it exactly like a revoke (participant.removed, sidebar removed).
ALTER TABLE shares ADD COLUMN expires_at timestamptz;
CREATE INDEX shares_expiry_idx ON shares (expires_at) WHERE expires_at IS NOT NULL;
