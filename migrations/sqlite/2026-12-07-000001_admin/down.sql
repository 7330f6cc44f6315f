DROP TABLE admin_login_failure;
DROP TABLE admin_audit;
DROP TABLE admin_account;
