-- The transactional outbox (libs/store/src/outbox.rs, the relay in bins/api/src/relay.rs).
-- Every api state change that others learn of by event writes its messages here in the same transaction as the
-- change; the relay publishes them in id order and then marks them published. A row is a conversation event
-- (JetStream, msg_id = its event id, used as Nats-Msg-Id) or a sidebar inbox message (core NATS, msg_id NULL).
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    -- The event kind (conversation.created, participant.removed, ...) or 'inbox': for logs and metrics.
    kind            text NOT NULL,
    subject         text NOT NULL,
    msg_id          uuid,
    payload         bytea NOT NULL,
    -- The conversation the change was about: the relay records a conversation.created's seq in its
    -- created_seq; erasure deletes its rows.
    conversation_id uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Stream seq JetStream acked (0 for a core NATS message); NULL until published.
    published_seq   bigint,
    published_at    timestamptz
);
-- What the relay still has to publish, in order.
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_seq IS NULL;
-- The api waits briefly for its own events' seq by event id.
CREATE INDEX outbox_msg_id_idx ON outbox (msg_id) WHERE msg_id IS NOT NULL;
-- Erasure finds a conversation's rows.
CREATE INDEX outbox_conversation_idx ON outbox (conversation_id);
-- Published rows are kept a while (so any replica can answer a request with the seq) and then pruned.
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
