-- One table, so that a test can see migrations were applied over the connection.
CREATE TABLE probe (id INTEGER PRIMARY KEY);
