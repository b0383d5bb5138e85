-- Sessions that end (issue 9 item 3). A login opens a session; its access tokens (short-lived JWTs) carry its id
-- (`sid`) and are refused once it is revoked. Its refresh tokens rotate: each is used once, and presenting a used
-- one again (a stolen copy racing its owner) revokes the whole session. Only SHA-256 hashes are stored.
CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- Sliding: each refresh moves it forward by the refresh lifetime.
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text CHECK (revoked_reason IN ('logout', 'refresh_reuse', 'member_removed', 'password_reset'))
);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Set when rotated: presenting it again is reuse.
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
