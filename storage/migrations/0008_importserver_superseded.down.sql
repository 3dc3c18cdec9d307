-- Reverts 0008_importserver_superseded.sql.
DELETE FROM ferry_importserver_notifications WHERE state = 'superseded';
ALTER TABLE ferry_importserver_notifications
    DROP CONSTRAINT ferry_importserver_notifications_state_check,
    ADD CONSTRAINT ferry_importserver_notifications_state_check
        CHECK (state IN ('pending', 'delivered', 'failed'));
