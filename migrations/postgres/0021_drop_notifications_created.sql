-- No query reads notifications by creation time (lists go by id, claims by status and due
-- time, the flood guard by recipient): the index only cost a b-tree insert per notification,
-- in the alarm's transaction.
DROP INDEX IF EXISTS notifications_created;
