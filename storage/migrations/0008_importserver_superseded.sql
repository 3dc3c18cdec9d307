-- importserver: a new run of a repository's import supersedes the outcomes
-- of its earlier runs that were not delivered yet (package
-- transfer/importserver). They stay in the outbox as 'superseded' and are
-- never sent: the coordinator has moved on, and an old outcome arriving
-- after a new run started would be applied to the new run.
ALTER TABLE ferry_importserver_notifications
    DROP CONSTRAINT ferry_importserver_notifications_state_check,
    ADD CONSTRAINT ferry_importserver_notifications_state_check
        CHECK (state IN ('pending', 'delivered', 'failed', 'superseded'));
