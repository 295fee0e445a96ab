-- Operators as a call center sees them (issue 8):
--   operator_extension   the extension that answered, also when it is no operator's (then
--                        operator_id is NULL and the call is still answered);
--   offered_operator_ids every operator whose leg rang or answered (group/operator scoping:
--                        a call belongs to the groups of every operator it rang or reached);
--   rung_operator_ids    the operators it rang, not the one who placed it: a missed call
--                        counts against each of them (calls_missed, efficiency).
ALTER TABLE calls
    ADD COLUMN operator_extension   text,
    ADD COLUMN offered_operator_ids uuid[] NOT NULL DEFAULT '{}',
    ADD COLUMN rung_operator_ids    uuid[] NOT NULL DEFAULT '{}';

-- What older rows can honestly say: who answered reached the call.
UPDATE calls c
   SET operator_extension = o.extension, offered_operator_ids = ARRAY[c.operator_id]
  FROM operators o
 WHERE c.operator_id = o.id;

-- A role change keeps the operator's identity: leaving the operator role retires the row
-- (kept, so calls keep their operator_id) instead of deleting it; coming back reuses it. Only
-- current operators hold an extension.
ALTER TABLE operators ADD COLUMN retired_at timestamptz;
ALTER TABLE operators DROP CONSTRAINT operators_extension_key;
CREATE UNIQUE INDEX operators_extension_current_key ON operators (extension)
    WHERE retired_at IS NULL;
