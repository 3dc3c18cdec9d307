-- Ferry's schema starts here. Each package contributes its tables as a
-- numbered file in this folder (NNNN_name.sql); storage.Migrate applies the
-- pending ones in order, each in its own transaction, and records them in
-- ferry_schema_migrations, which Migrate itself creates.
--
-- Numbers reserved so far: 0002 lease, 0003 bbm, 0004 enqueuer.
SELECT 1;
