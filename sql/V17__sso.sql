-- Single sign-on per organization (issue 15): an org admin names the org's OpenID Connect provider, the email
-- domains it vouches for, and whether passwords still work. The client secret is stored for the api's token calls
-- and never returned by any endpoint.
CREATE TABLE org_sso (
    org_id        uuid PRIMARY KEY REFERENCES orgs(id),
    issuer        text NOT NULL,
    client_id     text NOT NULL,
    client_secret text NOT NULL,
    display_name  text NOT NULL,
    passwords_off boolean NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A domain belongs to at most one org's SSO (lower-case), so an email names one provider at most.
CREATE TABLE org_sso_domains (
    domain text PRIMARY KEY,
    org_id uuid NOT NULL REFERENCES org_sso(org_id) ON DELETE CASCADE
);
CREATE INDEX org_sso_domains_org_idx ON org_sso_domains (org_id);

-- A sign-in under way: state, nonce and PKCE verifier stay here (only hashes of the state and of the browser's
-- key), used once, for a few minutes.
CREATE TABLE sso_logins (
    state_hash    bytea PRIMARY KEY,
    browser_hash  bytea NOT NULL,
    org_id        uuid NOT NULL REFERENCES orgs(id),
    nonce         text NOT NULL,
    pkce_verifier text NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX sso_logins_expiry_idx ON sso_logins (expires_at);

-- ID tokens already used to sign in (their SHA-256), kept until they expire: the same token never signs in twice.
CREATE TABLE sso_used_id_tokens (
    token_hash bytea PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sso_used_id_tokens_expiry_idx ON sso_used_id_tokens (expires_at);
