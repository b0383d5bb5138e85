-- RelayHub schema. PostgreSQL is the system of record.
-- The api owns orgs, users, conversations, shares and attachments (writes them synchronously);
-- the audit writer owns messages (the transcript) and audit_log, written from stream RH_CONV, idempotently.

CREATE TABLE orgs (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES orgs(id),
    email         text NOT NULL,
    name          text NOT NULL,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'member')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_org_idx ON users (org_id);

CREATE TABLE conversations (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES orgs(id),
    owner_id        uuid NOT NULL REFERENCES users(id),
    title           text NOT NULL,
    model           text NOT NULL,
    temperature     real,
    system_prompt   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    -- Stream position of the conversation.created event.
    created_seq     bigint NOT NULL DEFAULT 0,
    -- Highest stream position (of a non-delta event) the audit writer has applied to this conversation.
    applied_seq     bigint NOT NULL DEFAULT 0
);
CREATE INDEX conversations_owner_idx ON conversations (owner_id) WHERE deleted_at IS NULL;
CREATE INDEX conversations_org_idx ON conversations (org_id, created_at);

CREATE TABLE shares (
    conversation_id uuid NOT NULL REFERENCES conversations(id),
    user_id         uuid NOT NULL REFERENCES users(id),
    permission      text NOT NULL CHECK (permission IN ('view', 'respond')),
    granted_by      uuid NOT NULL REFERENCES users(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX shares_user_idx ON shares (user_id);

-- The transcript. A user message is one row (role 'user'); an AI response is one row (role 'assistant') created
-- at response.started with status 'streaming' and finished by its end event.
--   seq       stream position that orders the row in the conversation (message.created, or the FIRST
--             response.started of that response);
--   final_seq stream position from which the row is final (= seq for user messages; the end event for
--             responses; NULL while streaming).
-- GET /conversations/{id} returns rows with final_seq <= history_seq, where
--   history_seq = least(applied_seq, (min seq of streaming responses) - 1),
-- so history is exactly the stream prefix up to history_seq and a client that subscribes with
-- after_seq = history_seq gets everything else from the stream: no gap, no duplicate.
CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations(id),
    role            text NOT NULL CHECK (role IN ('user', 'assistant')),
    author_id       uuid REFERENCES users(id),
    text            text NOT NULL DEFAULT '',
    model           text,
    status          text NOT NULL CHECK (status IN ('complete', 'streaming', 'failed', 'stopped')),
    -- For an assistant row: the user message it answers.
    reply_to        uuid,
    client_msg_id   text,
    attempt         integer NOT NULL DEFAULT 1,
    seq             bigint NOT NULL,
    final_seq       bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, seq);
CREATE INDEX messages_streaming_idx ON messages (conversation_id, seq) WHERE status = 'streaming';

CREATE TABLE attachments (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations(id),
    uploaded_by     uuid NOT NULL REFERENCES users(id),
    filename        text NOT NULL,
    content_type    text NOT NULL,
    size            bigint NOT NULL,
    -- Object name in the JetStream object store bucket rh_attachments.
    object_name     text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_conversation_idx ON attachments (conversation_id);

-- Who did what, when. Written by the audit writer from stream events; id is the event id (idempotent).
-- Never holds message content.
CREATE TABLE audit_log (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL,
    conversation_id uuid,
    actor_id        uuid,
    action          text NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
    seq             bigint,
    at              timestamptz NOT NULL
);
CREATE INDEX audit_log_org_idx ON audit_log (org_id, at);
CREATE INDEX audit_log_conversation_idx ON audit_log (conversation_id, at);
