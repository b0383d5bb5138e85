-- Edit and regenerate (issue 14). An edit is a new user message that names the one it is a new version of
-- (`message.created.edit_of`); a regenerate is another assistant row answering the same message
-- (`response.requested`, then the answer's events). Nothing is overwritten: older versions stay rows, and which
-- rows are current (the model's context, a copy) is read from `edit_of` and `reply_to` (libs/store/src/history.rs).
ALTER TABLE messages ADD COLUMN edit_of uuid;
CREATE INDEX messages_edit_of_idx ON messages (conversation_id, edit_of) WHERE edit_of IS NOT NULL;
CREATE INDEX messages_reply_to_idx ON messages (conversation_id, reply_to) WHERE reply_to IS NOT NULL;
