-- Reverts 0006_importserver.sql.
DROP TABLE ferry_importserver_notifications;
DROP TABLE ferry_importserver_imports;
