-- Rate limits shared by every api replica (issue 9 item 2): one token bucket per key, e.g.
-- 'reply:user:<uuid>', 'reply:org:<uuid>', 'login:addr:<ip>', 'login:email:<email>'.
-- `tokens` is the balance at `updated_at`; the refill since then is computed at the next take
-- (rh_store::limits). A bucket left alone refills to full, so an old row means nothing and may be deleted.
CREATE TABLE rate_buckets (
    key        text PRIMARY KEY,
    tokens     double precision NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX rate_buckets_updated_at ON rate_buckets (updated_at);
