-- An org admin can remove a member (issue 9 item 3): the row stays (it owns conversations, wrote messages), but a
-- removed person cannot sign in, is not found in the directory, and every session of theirs was revoked.
ALTER TABLE users ADD COLUMN removed_at timestamptz;
