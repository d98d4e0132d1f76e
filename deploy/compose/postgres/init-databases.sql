-- Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d).
-- One database per service, each owned by its own login role: a service can reach
-- only its own data, as in production. Local development credentials only.
CREATE ROLE users LOGIN PASSWORD 'users-local';
CREATE DATABASE users OWNER users;
REVOKE ALL ON DATABASE users FROM PUBLIC;

CREATE ROLE orders LOGIN PASSWORD 'orders-local';
CREATE DATABASE orders OWNER orders;
REVOKE ALL ON DATABASE orders FROM PUBLIC;
