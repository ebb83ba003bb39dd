-- Schema version 2: the leader's lease, and the epoch of the leader that last changed
-- each job.
--
-- One row. `holder` is the node that leads (NULL once it released the lease) and
-- `holder_token` that node's process, so that a restarted node never takes over the
-- lease of its previous run. `epoch` is raised by every acquisition: it is the fencing
-- token every write of a leader checks in its own transaction. `expires_at` and
-- `acquired_at` are on the database's clock, so node clocks do not matter.
CREATE TABLE marie_leader (
    id smallint PRIMARY KEY CHECK (id = 1),
    holder text,
    holder_token uuid,
    epoch bigint NOT NULL CHECK (epoch >= 0),
    expires_at timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL
);
INSERT INTO marie_leader (id, holder, holder_token, epoch, expires_at, acquired_at)
VALUES (1, NULL, NULL, 0, now(), now());
-- The epoch of the leader whose write last changed the job (NULL: not changed since it
-- was inserted, or changed by a store without a lease).
ALTER TABLE jobs ADD COLUMN leader_epoch bigint;
