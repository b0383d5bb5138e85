-- Issue 10 leftovers.

-- Why an answer failed (the `error` of its `response.failed`, at most 300 characters), so that history, a late
-- joiner and a reload show the reason and not just "failed". NULL for every other status.
ALTER TABLE messages ADD COLUMN error text;

-- When the relay first tried to publish the row. A row still unmarked longer than JetStream's duplicate window
-- after it may already be in the stream: before publishing it again the relay looks for it there
-- (`bins/api/src/relay.rs`), so a long outage between a publish and its mark cannot store it twice.
ALTER TABLE outbox ADD COLUMN attempted_at timestamptz;
