-- Erasure (issue 17): deleting a conversation erases its content everywhere. The delete marks the conversation
-- and enqueues one erase job in the same transaction; any api replica claims due jobs (FOR UPDATE SKIP LOCKED,
-- then a lease in next_attempt_at) and runs them until done, retrying with back-off. See docs/erasure.md.
CREATE TABLE erase_jobs (
    conversation_id uuid PRIMARY KEY REFERENCES conversations(id),
    org_id          uuid NOT NULL,
    -- Who deleted it; NULL when the org's retention did.
    requested_by    uuid,
    reason          text NOT NULL CHECK (reason IN ('deleted', 'retention')),
    -- Object names (`<conversation>/<attachment>`, ids only) of its attachments, kept here once their rows are
    -- gone, until the objects are deleted.
    object_names    text[] NOT NULL DEFAULT '{}',
    -- What the PostgreSQL step removed (for the audit row written when the job is done).
    messages        bigint NOT NULL DEFAULT 0,
    attachments     bigint NOT NULL DEFAULT 0,
    shares          bigint NOT NULL DEFAULT 0,
    database_done   boolean NOT NULL DEFAULT false,
    attempts        integer NOT NULL DEFAULT 0,
    -- Due when <= now(). A claim moves it forward by the lease, so a replica that dies mid-job is replaced.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
CREATE INDEX erase_jobs_due_idx ON erase_jobs (next_attempt_at) WHERE done_at IS NULL;

-- "Erase conversations not updated for N days"; NULL: off (the default).
ALTER TABLE orgs ADD COLUMN retention_days integer CHECK (retention_days BETWEEN 1 AND 36500);
CREATE INDEX conversations_retention_idx ON conversations (org_id, updated_at) WHERE deleted_at IS NULL;
