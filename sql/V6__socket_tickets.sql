-- One-time socket tickets (issue 9 item 3): `POST /auth/ticket` issues one for `GET /ws?ticket=`, so the access
-- token never rides in a URL that proxies log. The edge redeems it through the api (`rh.api.socket_auth`), which
-- deletes it: it works once, for 30 seconds, and only while its session is open. Only SHA-256 hashes are stored.
CREATE TABLE socket_tickets (
    ticket_hash bytea PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    -- Expiry of the access token the ticket was issued for: the socket re-authenticates by then.
    token_exp   bigint NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX socket_tickets_expires_idx ON socket_tickets (expires_at);
