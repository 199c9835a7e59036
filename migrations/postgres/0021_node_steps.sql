-- The node's own steps (key rotations, renames, reloads: methods `node.…`)
-- found without reading the whole log. `check-config`, `serve` and a
-- reload ask how many pseudonym secret versions the log records, to refuse
-- a keys folder that missed one.
CREATE INDEX access_log_node_steps ON access_log (method, seq) WHERE method LIKE 'node.%';
