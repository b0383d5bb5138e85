-- Accounts bound to the provider's subject (issue 15): the first SSO sign-in of an account stores the ID token's
-- (issuer, sub); later sign-ins find the account by it, not by email, so an email reassigned at the provider cannot
-- take an account over. One subject per account and issuer; one account per subject.
CREATE TABLE sso_subjects (
    issuer     text NOT NULL,
    subject    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject),
    UNIQUE (user_id, issuer)
);
