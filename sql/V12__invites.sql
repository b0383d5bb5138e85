-- Invitations instead of first passwords (issue 15): an org admin creates one-time, expiring invite links; the
-- teammate opens one, picks a name and password and joins. Only the SHA-256 of the link's secret is stored. An
-- invite naming an email can be accepted only for that email.
CREATE TABLE invites (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs(id),
    email      text,
    role       text NOT NULL CHECK (role IN ('admin', 'member')),
    token_hash bytea NOT NULL UNIQUE,
    created_by uuid NOT NULL REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    used_by    uuid REFERENCES users(id),
    revoked_at timestamptz
);
CREATE INDEX invites_org_idx ON invites (org_id, created_at);

-- Anyone can change their own password: their other sessions end.
ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_revoked_reason_check
    CHECK (revoked_reason IN ('logout', 'refresh_reuse', 'member_removed', 'password_reset', 'password_changed'));
