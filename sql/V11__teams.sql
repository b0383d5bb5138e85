-- Teams (issue 15): an org admin groups people; a conversation shared with a team is shared with each member, View
-- Only or Can Respond. A person's permission on a conversation is the highest of their personal share and the
-- shares of every team they are in (the api computes it: `rh_store::access`), so removing one leaves the others.
CREATE TABLE teams (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs(id),
    name       text NOT NULL,
    created_by uuid NOT NULL REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX teams_org_name_key ON teams (org_id, lower(name));

CREATE TABLE team_members (
    team_id    uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users(id),
    added_by   uuid NOT NULL REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_idx ON team_members (user_id);

CREATE TABLE team_shares (
    conversation_id uuid NOT NULL REFERENCES conversations(id),
    team_id         uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    permission      text NOT NULL CHECK (permission IN ('view', 'respond')),
    granted_by      uuid NOT NULL REFERENCES users(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, team_id)
);
CREATE INDEX team_shares_team_idx ON team_shares (team_id);
